//! (being written)
pub struct Frame;
pub enum ContentType {}
