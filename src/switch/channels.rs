//! Reading `show channels as json`.
//!
//! FreeSWITCH answers `{"row_count":N,"rows":[{…},…]}` with every column as a
//! string, or `{"row_count": 0}` with no `rows` key when there are none
//! (docs/esl-protocol.md §5.8). Only the columns reconciliation needs are kept.

use serde::Deserialize;

/// One row of `show channels as json`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ChannelRow {
    /// Channel UUID.
    pub uuid: String,
    /// `inbound` or `outbound`.
    #[serde(default)]
    pub direction: String,
    /// Creation time, seconds since the epoch, as text.
    #[serde(default)]
    pub created_epoch: String,
    /// Caller-ID number.
    #[serde(default)]
    pub cid_num: String,
    /// Caller-ID name.
    #[serde(default)]
    pub cid_name: String,
    /// Destination.
    #[serde(default)]
    pub dest: String,
    /// `RINGING`, `EARLY`, `ACTIVE`, `HELD`, …
    #[serde(default)]
    pub callstate: String,
    /// The call's UUID (A-leg's for bridged legs).
    #[serde(default)]
    pub call_uuid: String,
}

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    rows: Vec<ChannelRow>,
}

/// Parses the api/response body.
pub fn parse(body: &[u8]) -> Result<Vec<ChannelRow>, String> {
    if body.starts_with(b"-ERR") {
        return Err(String::from_utf8_lossy(body).trim_end().to_owned());
    }
    serde_json::from_slice::<Answer>(body)
        .map(|a| a.rows)
        .map_err(|e| format!("show channels as json: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_full_answers() {
        assert!(parse(b"{\"row_count\": 0}\n").unwrap().is_empty());
        let rows = parse(br#"{"row_count":1,"rows":[{"uuid":"u1","direction":"inbound","created_epoch":"1795283562","cid_num":"+1555","dest":"2000","callstate":"ACTIVE","call_uuid":"u1","name":"x"}]}"#).unwrap();
        assert_eq!(rows[0].uuid, "u1");
        assert_eq!(rows[0].callstate, "ACTIVE");
        assert!(parse(b"-ERR SQL disabled, no data available!\n").is_err());
    }
}
