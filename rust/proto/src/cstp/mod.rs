//! CSTP: the AnyConnect framing over TLS (protocol.md §4) and its timers (§7.1).

pub mod deframer;
pub mod frame;
pub mod timers;

pub use deframer::Deframer;
pub use frame::{encode, Disconnect, Frame, FrameError, PacketType};
pub mod session;
pub use session::{CstpConnection, CstpError, CstpStats, Event, Role};
pub use timers::{KeepaliveAction, KeepaliveTimers};
