//! Reading a load's tables ahead of the target, in load order.
//!
//! When the tables load one after another in one transaction, the target
//! spends part of each table on work no source byte is needed for: the end
//! of its COPY (the last rows inserted, foreign keys checked) and the start
//! of the next. A source read on demand waits for that work and only then
//! pays its own start (a round trip or two and the source's `COPY TO`, or a
//! file opened and its reader started). With a thousand small tables that
//! wait is a large part of the run. A producer running beside the load
//! starts each table's source as soon as the previous one's blocks are read
//! and queues its blocks here, up to a byte budget, for the load to take.
//!
//! The producer and the load run on one task (joined, not spawned): the
//! queue needs no lock, and the producer ends with the load.

use std::cell::RefCell;
use std::collections::VecDeque;

use bytes::Bytes;
use tokio::sync::Notify;

use super::loader::BlockSource;
use super::plan::TableLoad;
use crate::error::{Error, Result};

/// Bytes read ahead of the load: queued blocks and the one the load holds.
/// Small tables (a few KB each) queue many tables' worth; a large table
/// runs at most this far ahead, so memory stays bounded by one block plus
/// this. A block is read only once there is room, so a block holding one
/// large row is read only after the load let go of the one before it.
pub const READ_AHEAD_BYTES: usize = 4 * crate::stream::stages::BLOCK_SIZE;

/// The queue between the producer and the load. `E` is what the producer
/// hands over at a table's end (a file's summary for restore).
pub struct ReadAhead<E> {
    state: RefCell<State<E>>,
    /// Signalled when an item is queued or the producer stops.
    added: Notify,
    /// Signalled when the load takes an item or lets go of a block.
    taken: Notify,
}

struct State<E> {
    items: VecDeque<Item<E>>,
    /// Bytes of the queued blocks and of the block the load holds.
    held: usize,
    /// The size of the block the load holds (let go of at its next call).
    out: usize,
    /// The producer stopped: nothing more will be queued.
    closed: bool,
}

enum Item<E> {
    Block(Bytes),
    /// The end of the table at `index` (the load's plan index) and how its
    /// reading ended.
    End {
        index: usize,
        result: Result<E>,
    },
}

impl<E> Default for ReadAhead<E> {
    fn default() -> Self {
        ReadAhead {
            state: RefCell::new(State { items: VecDeque::new(), held: 0, out: 0, closed: false }),
            added: Notify::new(),
            taken: Notify::new(),
        }
    }
}

impl<E> ReadAhead<E> {
    /// Producer: queues every block of `blocks`, reading the next only when
    /// there is room.
    ///
    /// # Errors
    /// The source's error.
    pub async fn pass(&self, blocks: &mut impl BlockSource) -> Result<()> {
        loop {
            self.room().await;
            let Some(block) = blocks.next_block().await? else { return Ok(()) };
            let mut state = self.state.borrow_mut();
            state.held += block.len();
            state.items.push_back(Item::Block(block));
            drop(state);
            self.added.notify_one();
        }
    }

    /// Producer: reads `tables` in order, each with `read` (which passes its
    /// blocks through [`ReadAhead::pass`] and returns what the table's end
    /// hands over), then closes. Stops at the first error, which the load
    /// meets at that table.
    pub async fn fill<'t, F>(
        &self,
        tables: &'t [TableLoad],
        mut read: impl FnMut(&'t TableLoad) -> F,
    ) where
        F: std::future::Future<Output = Result<E>>,
    {
        for t in tables {
            let result = read(t).await;
            let failed = result.is_err();
            self.end(t.index, result);
            if failed {
                break;
            }
        }
        self.close();
    }

    /// Producer: the table at `index` ended, as `result` says.
    pub fn end(&self, index: usize, result: Result<E>) {
        self.state.borrow_mut().items.push_back(Item::End { index, result });
        self.added.notify_one();
    }

    /// Producer: nothing more will be queued.
    pub fn close(&self) {
        self.state.borrow_mut().closed = true;
        self.added.notify_one();
    }

    async fn room(&self) {
        loop {
            if self.state.borrow().held < READ_AHEAD_BYTES {
                return;
            }
            self.taken.notified().await;
        }
    }

    /// Load: the table at `index`'s blocks, in the order queued.
    pub fn table(&self, index: usize) -> QueuedBlocks<'_, E> {
        QueuedBlocks { ahead: self, index, ended: None }
    }

    async fn next_item(&self) -> Option<Item<E>> {
        {
            // The block handed out last is let go of.
            let mut state = self.state.borrow_mut();
            state.held -= std::mem::take(&mut state.out);
        }
        self.taken.notify_one();
        loop {
            {
                let mut state = self.state.borrow_mut();
                if let Some(item) = state.items.pop_front() {
                    if let Item::Block(b) = &item {
                        state.out = b.len();
                    }
                    return Some(item);
                }
                if state.closed {
                    return None;
                }
            }
            self.added.notified().await;
        }
    }
}

/// One table's blocks as the load takes them from a [`ReadAhead`].
pub struct QueuedBlocks<'a, E> {
    ahead: &'a ReadAhead<E>,
    index: usize,
    /// What the producer handed over at the table's end.
    ended: Option<E>,
}

impl<E> QueuedBlocks<'_, E> {
    /// What the producer handed over at the table's end, once every block
    /// was taken.
    ///
    /// # Errors
    /// The blocks were not all taken.
    pub fn finish(self) -> Result<E> {
        self.ended.ok_or_else(|| {
            Error::runtime(format!("table {} of the load was not read to its end", self.index))
        })
    }
}

impl<E> BlockSource for QueuedBlocks<'_, E> {
    async fn next_block(&mut self) -> Result<Option<Bytes>> {
        if self.ended.is_some() {
            return Ok(None);
        }
        match self.ahead.next_item().await {
            Some(Item::Block(b)) => Ok(Some(b)),
            Some(Item::End { index, result }) if index == self.index => {
                self.ended = Some(result?);
                Ok(None)
            }
            // The producer follows the load's order: anything else is a bug.
            Some(Item::End { index, .. }) => Err(Error::runtime(format!(
                "the source was read ahead out of order (table {index} where {} was due)",
                self.index
            ))),
            None => Err(Error::runtime(format!(
                "the source stopped before table {} of the load",
                self.index
            ))),
        }
    }
}

/// Where a table's blocks come from: a [`ReadAhead`]'s queue, or a source
/// the load opens itself (`--per-table-commit`, where tables load in no set
/// order, or a load that reads its source for other things between tables).
pub enum TableBlocks<'a, E, S> {
    Ahead(QueuedBlocks<'a, E>),
    OnDemand(S),
}

impl<E, S: BlockSource> BlockSource for TableBlocks<'_, E, S> {
    async fn next_block(&mut self) -> Result<Option<Bytes>> {
        match self {
            TableBlocks::Ahead(queued) => queued.next_block().await,
            TableBlocks::OnDemand(source) => source.next_block().await,
        }
    }
}

/// Runs `load` with `produce` beside it on this task, until `load` ends;
/// `produce` is dropped then if still running (the load failed). `produce`
/// must [`ReadAhead::close`] when it ends.
pub async fn beside<T>(
    load: impl std::future::Future<Output = T>,
    produce: impl std::future::Future<Output = ()>,
) -> T {
    let load = std::pin::pin!(load);
    let produce = std::pin::pin!(produce);
    match futures::future::select(load, produce).await {
        futures::future::Either::Left((done, _)) => done,
        futures::future::Either::Right(((), load)) => load.await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Blocks(Vec<Bytes>);

    impl BlockSource for Blocks {
        async fn next_block(&mut self) -> Result<Option<Bytes>> {
            Ok(if self.0.is_empty() { None } else { Some(self.0.remove(0)) })
        }
    }

    fn block(n: usize) -> Bytes {
        Bytes::from(vec![b'x'; n])
    }

    #[tokio::test]
    async fn tables_arrive_whole_and_in_order_within_the_budget() {
        let ahead: ReadAhead<&str> = ReadAhead::default();
        let tables: Vec<Vec<Bytes>> = (0..20).map(|i| vec![block(100_000); i % 7]).collect();
        let expected: Vec<usize> = tables.iter().map(|t| t.len() * 100_000).collect();
        let produce = async {
            for (i, t) in tables.into_iter().enumerate() {
                let r = ahead.pass(&mut Blocks(t)).await.map(|()| "done");
                ahead.end(i, r);
            }
            ahead.close();
        };
        let load = async {
            let mut got = Vec::new();
            for i in 0..20 {
                let mut q = ahead.table(i);
                let mut n = 0;
                while let Some(b) = q.next_block().await.unwrap() {
                    assert!(ahead.state.borrow().held <= READ_AHEAD_BYTES + b.len());
                    n += b.len();
                    tokio::task::yield_now().await;
                }
                assert_eq!(q.finish().unwrap(), "done");
                got.push(n);
            }
            got
        };
        assert_eq!(beside(load, produce).await, expected);
    }

    #[tokio::test]
    async fn a_large_block_is_read_only_after_the_one_before_is_let_go_of() {
        let ahead: ReadAhead<()> = ReadAhead::default();
        let big = READ_AHEAD_BYTES * 3;
        let produce = async {
            let r = ahead.pass(&mut Blocks(vec![block(big), block(big), block(big)])).await;
            ahead.end(0, r);
            ahead.close();
        };
        let load = async {
            let mut q = ahead.table(0);
            while q.next_block().await.unwrap().is_some() {
                for _ in 0..10 {
                    tokio::task::yield_now().await;
                }
                // While the load holds one, the producer holds none.
                assert!(ahead.state.borrow().items.is_empty());
            }
            q.finish().unwrap();
        };
        beside(load, produce).await;
    }

    #[tokio::test]
    async fn a_source_error_reaches_its_table_and_stops_the_producer() {
        let ahead: ReadAhead<()> = ReadAhead::default();
        let produce = async {
            ahead.end(0, Ok(()));
            ahead.end(1, Err(Error::runtime("the source broke")));
            ahead.close();
        };
        let load = async {
            let mut q = ahead.table(0);
            assert!(q.next_block().await.unwrap().is_none());
            let mut q = ahead.table(1);
            let e = q.next_block().await.unwrap_err();
            assert!(e.to_string().contains("the source broke"), "{e}");
            let mut q = ahead.table(2);
            let e = q.next_block().await.unwrap_err();
            assert!(e.to_string().contains("stopped before table 2"), "{e}");
        };
        beside(load, produce).await;
    }
}
