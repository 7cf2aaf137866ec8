//! Plain SQL files as psql reads them, split into statements: semicolons
//! end statements except inside quotes ('...', E'...', "..."), dollar-quoted
//! bodies ($$...$$, $tag$...$tag$) and comments (-- and nested /* */). Each
//! statement keeps where it starts, so a server error position becomes a file
//! line and column. psql meta-commands (a line starting with a backslash
//! outside a statement's quotes) are refused, not interpreted. Nothing here
//! talks to a server.

/// One statement of a file, without its terminating semicolon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub text: String,
    /// 1-based line and column (in characters) of its first character.
    pub line: usize,
    pub column: usize,
}

impl Statement {
    /// The first word, upper-cased (`BEGIN`, `CREATE`, ...).
    pub fn keyword(&self) -> String {
        self.text
            .split(|c: char| !c.is_ascii_alphabetic())
            .find(|w| !w.is_empty())
            .unwrap_or("")
            .to_ascii_uppercase()
    }

    /// Whether it controls transactions (not allowed under --single-transaction).
    pub fn is_transaction_control(&self) -> bool {
        match self.keyword().as_str() {
            "BEGIN" | "START" | "COMMIT" | "END" | "ROLLBACK" | "ABORT" | "SAVEPOINT"
            | "RELEASE" => true,
            // PREPARE TRANSACTION, not PREPARE name AS ...
            "PREPARE" => self.text.to_ascii_uppercase().contains("TRANSACTION"),
            _ => false,
        }
    }

    /// The file line and column of a 1-based character `position` within
    /// the statement (what the server reports).
    pub fn locate(&self, position: usize) -> (usize, usize) {
        let (mut line, mut column) = (self.line, self.column);
        for c in self.text.chars().take(position.saturating_sub(1)) {
            if c == '\n' {
                line += 1;
                column = 1;
            } else {
                column += 1;
            }
        }
        (line, column)
    }
}

/// Why a file cannot be run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SqlFileError {
    #[error(
        "line {line}: psql meta-command `{command}` is not supported; the file must be plain SQL"
    )]
    MetaCommand { line: usize, command: String },
    #[error("line {line}: {what} that starts here never ends")]
    Unterminated { line: usize, what: &'static str },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Normal,
    Single { escapes: bool },
    Double,
    LineComment,
    BlockComment(usize),
}

/// Splits SQL text into statements.
///
/// # Errors
/// A meta-command line, or a quote, dollar body or comment left open.
pub fn split(sql: &str) -> Result<Vec<Statement>, SqlFileError> {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = Vec::new();
    let mut state = State::Normal;
    let mut dollar: Option<String> = None;
    let (mut line, mut column) = (1usize, 1usize);
    let mut start: Option<(usize, usize, usize)> = None; // (index, line, column)
    let mut opened_at = 1;
    let mut at_line_start = true;
    let mut i = 0;
    let push = |out: &mut Vec<Statement>, start: &mut Option<(usize, usize, usize)>, end: usize| {
        if let Some((s, l, c)) = start.take() {
            let text: String = chars[s..end].iter().collect();
            let trimmed = text.trim_end();
            if !trimmed.is_empty() {
                out.push(Statement { text: trimmed.to_string(), line: l, column: c });
            }
        }
    };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let mut advance = 1;
        if let Some(tag) = &dollar {
            if c == '$' && chars[i..].iter().take(tag.len()).collect::<String>() == *tag {
                advance = tag.chars().count();
                dollar = None;
            }
        } else {
            match state {
                State::Normal => {
                    if at_line_start && c == '\\' && start.is_none() {
                        let command: String =
                            chars[i..].iter().take_while(|c| !c.is_whitespace()).collect();
                        return Err(SqlFileError::MetaCommand { line, command });
                    }
                    let comment_start =
                        (c == '-' && next == Some('-')) || (c == '/' && next == Some('*'));
                    if start.is_none() && !c.is_whitespace() && !comment_start && c != ';' {
                        start = Some((i, line, column));
                    }
                    match c {
                        '\'' => {
                            let escapes = i > 0
                                && matches!(chars[i - 1], 'e' | 'E')
                                && (i < 2
                                    || !chars[i - 2].is_alphanumeric() && chars[i - 2] != '_');
                            state = State::Single { escapes };
                            opened_at = line;
                        }
                        '"' => {
                            state = State::Double;
                            opened_at = line;
                        }
                        '-' if next == Some('-') => state = State::LineComment,
                        '/' if next == Some('*') => {
                            state = State::BlockComment(1);
                            opened_at = line;
                            advance = 2;
                        }
                        '$' => {
                            // $tag$ where tag is empty or an identifier not starting with a digit;
                            // `$1` parameters are not dollar quotes.
                            let prev_ident =
                                i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
                            let tag_len = chars[i + 1..]
                                .iter()
                                .take_while(|c| c.is_alphanumeric() || **c == '_')
                                .count();
                            let closes = chars.get(i + 1 + tag_len) == Some(&'$');
                            let digit_start = chars.get(i + 1).is_some_and(|c| c.is_ascii_digit());
                            if !prev_ident && closes && !digit_start {
                                let tag: String = chars[i..i + tag_len + 2].iter().collect();
                                advance = tag.chars().count();
                                dollar = Some(tag);
                                opened_at = line;
                            }
                        }
                        ';' => push(&mut out, &mut start, i),
                        _ => {}
                    }
                }
                State::Single { escapes } => {
                    if escapes && c == '\\' {
                        advance = 2;
                    } else if c == '\'' {
                        if next == Some('\'') {
                            advance = 2;
                        } else {
                            state = State::Normal;
                        }
                    }
                }
                State::Double => {
                    if c == '"' {
                        if next == Some('"') {
                            advance = 2;
                        } else {
                            state = State::Normal;
                        }
                    }
                }
                State::LineComment => {
                    if c == '\n' {
                        state = State::Normal;
                    }
                }
                State::BlockComment(depth) => {
                    if c == '*' && next == Some('/') {
                        state =
                            if depth == 1 { State::Normal } else { State::BlockComment(depth - 1) };
                        advance = 2;
                    } else if c == '/' && next == Some('*') {
                        state = State::BlockComment(depth + 1);
                        advance = 2;
                    }
                }
            }
        }
        for k in 0..advance {
            let Some(&ch) = chars.get(i + k) else { break };
            if ch == '\n' {
                line += 1;
                column = 1;
                at_line_start = true;
            } else {
                column += 1;
                if !(ch == ' ' || ch == '\t') {
                    at_line_start = false;
                }
            }
        }
        i += advance;
    }
    if dollar.is_some() {
        return Err(SqlFileError::Unterminated { line: opened_at, what: "a dollar-quoted body" });
    }
    match state {
        State::Single { .. } => {
            return Err(SqlFileError::Unterminated { line: opened_at, what: "a quoted string" });
        }
        State::Double => {
            return Err(SqlFileError::Unterminated {
                line: opened_at,
                what: "a quoted identifier",
            });
        }
        State::BlockComment(_) => {
            return Err(SqlFileError::Unterminated { line: opened_at, what: "a /* comment" });
        }
        _ => {}
    }
    push(&mut out, &mut start, chars.len());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(sql: &str) -> Vec<String> {
        split(sql).unwrap().into_iter().map(|s| s.text).collect()
    }

    #[test]
    fn splits_at_semicolons_outside_quotes_bodies_and_comments() {
        let sql = "-- header; comment\nCREATE TABLE a (x text DEFAULT 'a;b''c');\n\
                   /* block; /* nested; */ still */ INSERT INTO \"we;ird\" VALUES (E'x\\';y');\n\
                   CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1; $$;\n\
                   DO $body$ BEGIN RAISE NOTICE '$$;'; END $body$;\n\
                   SELECT $1::int\n";
        assert_eq!(
            texts(sql),
            vec![
                "CREATE TABLE a (x text DEFAULT 'a;b''c')",
                "INSERT INTO \"we;ird\" VALUES (E'x\\';y')",
                "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1; $$",
                "DO $body$ BEGIN RAISE NOTICE '$$;'; END $body$",
                "SELECT $1::int",
            ]
        );
    }

    #[test]
    fn statements_know_where_they_start() {
        let s = split("\n\n  SELECT 1;\nSELECT\n  nope;").unwrap();
        assert_eq!((s[0].line, s[0].column), (3, 3));
        assert_eq!((s[1].line, s[1].column), (4, 1));
        // Position 10 of "SELECT\n  nope" is the 'n' of nope.
        assert_eq!(s[1].locate(10), (5, 3));
    }

    #[test]
    fn meta_commands_and_open_quotes_are_errors() {
        assert_eq!(
            split("SELECT 1;\n\\set x 1\n"),
            Err(SqlFileError::MetaCommand { line: 2, command: "\\set".into() })
        );
        assert!(matches!(split("SELECT 'abc;\n"), Err(SqlFileError::Unterminated { line: 1, .. })));
        assert!(matches!(split("DO $$ BEGIN\n"), Err(SqlFileError::Unterminated { .. })));
        // A backslash inside a statement's text is not a meta-command.
        assert_eq!(texts("SELECT '\n\\x';"), vec!["SELECT '\n\\x'"]);
    }

    #[test]
    fn transaction_control_is_recognised() {
        let s = split("BEGIN; create table t(); COMMIT; start transaction; PREPARE q AS SELECT 1;")
            .unwrap();
        let tc: Vec<bool> = s.iter().map(Statement::is_transaction_control).collect();
        assert_eq!(tc, vec![true, false, true, true, false]);
    }
}
