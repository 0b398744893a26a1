//! fsgate: a daemon beside FreeSWITCH that turns it into a programmable voice platform.
pub mod cli;
pub mod esl;
pub mod sim;
