//! (being written)
pub struct EslCodec;
pub enum Message {}
