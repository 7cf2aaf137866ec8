//! Migration runbooks: the plan file (TOML) and its checks, and SQL files split
//! into statements as psql splits them.

pub mod plan;
pub mod sqlfile;
