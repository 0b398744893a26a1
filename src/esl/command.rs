//! (being written on the `cmd` branch)
/// Placeholder until the command module lands.
pub enum Command {}
impl Command {
    /// Writes the command.
    pub fn encode(&self, _dst: &mut bytes::BytesMut) {
        match *self {}
    }
}
