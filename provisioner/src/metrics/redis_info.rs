//! The fields of Redis' `INFO` answer (`# Section` headers, then `field:value` lines) that
//! `top` shows: commands processed (ops/s come from two readings), memory, clients.

/// What one `INFO` said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedisInfo {
    /// `total_commands_processed`: every command since Redis started.
    pub total_commands_processed: u64,
    /// `instantaneous_ops_per_sec`: Redis' own estimate over its last samples.
    pub instantaneous_ops_per_sec: u64,
    /// `used_memory`, in bytes.
    pub used_memory: u64,
    /// `maxmemory`, in bytes; 0 when unlimited.
    pub maxmemory: u64,
    /// `connected_clients`.
    pub connected_clients: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InfoError {
    #[error("Redis INFO has no {0} field (is this Redis?)")]
    Missing(&'static str),
    #[error("Redis INFO field {field} is not a count: {value:?}")]
    NotACount { field: &'static str, value: String },
}

impl RedisInfo {
    pub fn parse(text: &str) -> Result<RedisInfo, InfoError> {
        let field = |name: &'static str| -> Result<u64, InfoError> {
            let value = text
                .lines()
                .filter_map(|line| line.trim_end().split_once(':'))
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value)
                .ok_or(InfoError::Missing(name))?;
            value.parse().map_err(|_| InfoError::NotACount {
                field: name,
                value: value.to_owned(),
            })
        };
        Ok(RedisInfo {
            total_commands_processed: field("total_commands_processed")?,
            instantaneous_ops_per_sec: field("instantaneous_ops_per_sec")?,
            used_memory: field("used_memory")?,
            maxmemory: field("maxmemory")?,
            connected_clients: field("connected_clients")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Excerpts of a Redis 7 `INFO`, with its CRLF line ends.
    const INFO: &str = "# Server\r\nredis_version:7.0.15\r\n\r\n# Clients\r\n\
        connected_clients:5\r\n\r\n# Memory\r\nused_memory:1171496\r\n\
        used_memory_human:1.12M\r\nmaxmemory:268435456\r\n\r\n# Stats\r\n\
        total_connections_received:40\r\ntotal_commands_processed:81234\r\n\
        instantaneous_ops_per_sec:211\r\n";

    #[test]
    fn reads_the_fields_top_shows() {
        assert_eq!(
            RedisInfo::parse(INFO),
            Ok(RedisInfo {
                total_commands_processed: 81234,
                instantaneous_ops_per_sec: 211,
                used_memory: 1171496,
                maxmemory: 268435456,
                connected_clients: 5,
            })
        );
    }

    #[test]
    fn a_missing_or_garbled_field_is_named() {
        assert_eq!(
            RedisInfo::parse("# Server\r\nredis_version:7.0.15\r\n"),
            Err(InfoError::Missing("total_commands_processed"))
        );
        let garbled = INFO.replace("used_memory:1171496", "used_memory:lots");
        assert_eq!(
            RedisInfo::parse(&garbled),
            Err(InfoError::NotACount {
                field: "used_memory",
                value: "lots".into()
            })
        );
    }
}
