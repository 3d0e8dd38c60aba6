//! What a runtime plugin needs when its functions run in a child process of
//! the worker (the `node` and `native` plugins): the child is started on two
//! pipes ([`spawn`]: fd 3 from the plugin, fd 4 to it, stdout and stderr the
//! worker's, dying with the worker), frames go to it in order without ever
//! blocking the reader ([`to_child`]), and [`ChildInstance`] sends `start`,
//! runs invocations, serves the child's host calls, and ends the worker the
//! way the child ended, so that the core reports a crash, a timeout or an
//! out-of-memory kill exactly as for a runtime inside the worker.
//!
//! The frames and messages are in docs/node.md ("Inside") and docs/native.md.

mod instance;
pub mod spawn;
pub mod to_child;

pub use ggcore_frame as frame;
pub use instance::ChildInstance;
