//! (being written)
pub struct Event;
pub enum EventFormat {
    Plain,
    Json,
}
