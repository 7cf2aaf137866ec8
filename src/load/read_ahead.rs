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
//! The producer runs either on the load's task (joined, not spawned: copy's
//! source is a session of the same runtime) or on a thread of its own
//! (restore, whose files are read, checked and turned into the server's
//! format there, so none of that work sits between one table's end and the
//! next one's rows on the load's thread).

use std::collections::VecDeque;
use std::sync::Mutex;

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

/// What a queued block counts against [`READ_AHEAD_BYTES`].
pub trait Weighed {
    fn weight(&self) -> usize;
}

impl Weighed for Bytes {
    fn weight(&self) -> usize {
        self.len()
    }
}

/// The queue between the producer and the load. `E` is what the producer
/// hands over at a table's end (a file's checks for restore), `B` a block.
pub struct ReadAhead<E, B = Bytes> {
    state: Mutex<State<E, B>>,
    /// Signalled when an item is queued or the producer stops.
    added: Notify,
    /// Signalled when the load takes an item, lets go of a block or stops.
    taken: Notify,
}

struct State<E, B> {
    items: VecDeque<Item<E, B>>,
    /// Bytes of the queued blocks and of the block the load holds.
    held: usize,
    /// The size of the block the load holds (let go of at its next call).
    out: usize,
    /// The producer stopped: nothing more will be queued.
    closed: bool,
    /// The load stopped: nothing more will be taken.
    stopped: bool,
}

enum Item<E, B> {
    Block(B),
    /// The end of the table at `index` (the load's plan index) and how its
    /// reading ended.
    End {
        index: usize,
        result: Result<E>,
    },
}

impl<E, B> Default for ReadAhead<E, B> {
    fn default() -> Self {
        ReadAhead {
            state: Mutex::new(State {
                items: VecDeque::new(),
                held: 0,
                out: 0,
                closed: false,
                stopped: false,
            }),
            added: Notify::new(),
            taken: Notify::new(),
        }
    }
}

impl<E, B: Weighed> ReadAhead<E, B> {
    fn state(&self) -> std::sync::MutexGuard<'_, State<E, B>> {
        // Nothing panics while holding the lock; a poisoned one is as good.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Producer: queues every block of `blocks`, reading the next only when
    /// there is room.
    ///
    /// # Errors
    /// The source's error, or the load stopped.
    pub async fn pass(&self, blocks: &mut impl BlockSource<B>) -> Result<()> {
        loop {
            self.room().await?;
            let Some(block) = blocks.next_block().await? else { return Ok(()) };
            self.push(block);
        }
    }

    /// Producer on a thread of its own: queues `block` once there is room.
    ///
    /// # Errors
    /// The load stopped.
    pub fn pass_blocking(&self, block: B) -> Result<()> {
        futures::executor::block_on(self.room())?;
        self.push(block);
        Ok(())
    }

    fn push(&self, block: B) {
        let mut state = self.state();
        state.held += block.weight();
        state.items.push_back(Item::Block(block));
        drop(state);
        self.added.notify_one();
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
        self.state().items.push_back(Item::End { index, result });
        self.added.notify_one();
    }

    /// Producer: nothing more will be queued.
    pub fn close(&self) {
        self.state().closed = true;
        self.added.notify_one();
    }

    /// Load: nothing more will be taken; a producer waiting for room stops.
    pub fn stop(&self) {
        self.state().stopped = true;
        self.taken.notify_one();
    }

    async fn room(&self) -> Result<()> {
        loop {
            {
                let state = self.state();
                if state.stopped {
                    return Err(Error::runtime("the load stopped"));
                }
                if state.held < READ_AHEAD_BYTES {
                    return Ok(());
                }
            }
            self.taken.notified().await;
        }
    }

    /// Load: the table at `index`'s blocks, in the order queued.
    pub fn table(&self, index: usize) -> QueuedBlocks<'_, E, B> {
        QueuedBlocks { ahead: self, index, ended: None }
    }

    async fn next_item(&self) -> Option<Item<E, B>> {
        {
            // The block handed out last is let go of.
            let mut state = self.state();
            state.held -= std::mem::take(&mut state.out);
        }
        self.taken.notify_one();
        loop {
            {
                let mut state = self.state();
                if let Some(item) = state.items.pop_front() {
                    if let Item::Block(b) = &item {
                        state.out = b.weight();
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
pub struct QueuedBlocks<'a, E, B = Bytes> {
    ahead: &'a ReadAhead<E, B>,
    index: usize,
    /// What the producer handed over at the table's end.
    ended: Option<E>,
}

impl<E, B> QueuedBlocks<'_, E, B> {
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

impl<E, B: Weighed> BlockSource<B> for QueuedBlocks<'_, E, B> {
    async fn next_block(&mut self) -> Result<Option<B>> {
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
pub enum TableBlocks<'a, E, S, B = Bytes> {
    Ahead(QueuedBlocks<'a, E, B>),
    OnDemand(S),
}

impl<E, S: BlockSource<B>, B: Weighed> BlockSource<B> for TableBlocks<'_, E, S, B> {
    async fn next_block(&mut self) -> Result<Option<B>> {
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
                    assert!(ahead.state().held <= READ_AHEAD_BYTES + b.len());
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
                assert!(ahead.state().items.is_empty());
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

    /// A producer on another thread fills the queue to its budget and
    /// waits; the load stopping ends that wait with an error.
    #[test]
    fn a_producer_thread_waiting_for_room_stops_with_the_load() {
        let ahead: std::sync::Arc<ReadAhead<()>> = std::sync::Arc::default();
        let a = ahead.clone();
        let producer = std::thread::spawn(move || {
            let mut passed = 0;
            while a.pass_blocking(block(100_000)).is_ok() {
                passed += 1;
            }
            passed
        });
        while ahead.state().held < READ_AHEAD_BYTES {
            std::thread::yield_now();
        }
        ahead.stop();
        let passed = producer.join().unwrap();
        assert_eq!(passed, READ_AHEAD_BYTES.div_ceil(100_000));
    }
}
