//! A FreeSWITCH stand-in for tests and demos.
//!
//! The simulator speaks real ESL and behaves like the real switch as far as
//! fsgate can observe it, so that the daemon's tests and `fsgate demo` need no
//! PBX. It must never be used as, or grow into, a telephony engine: there is no
//! media and no SIP, only the behaviour the captures in `shared/esl/` and the
//! FreeSWITCH sources show. This module owns the simulated parts: [`dialplan`]
//! (mod_dialplan_xml's hunt and the `curl` application).

pub mod dialplan;
