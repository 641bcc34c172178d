//! Images: what the cluster runs, built on this machine and brought onto each host.
//!
//! - [`context`]: build contexts held in memory, hashed by content and packed as tar.
//! - [`build`]: building the VM, service and web app images from `templates/`.
//! - [`transfer`]: shipping an image into a host's engine, and the engine calls (push, pull,
//!   tag) the other ways share.
//! - [`registry`]: shipping only missing layers, through a registry on the host's loopback.
//! - [`pull_mode`]: pushing to the cluster's registry once, and each host pulling from it.
//! - [`k6`]: finding the k6 binary the VM image and the load tester carry.

mod build;
mod context;
mod k6;
mod pull_mode;
mod registry;
mod transfer;

pub use build::{
    ensure_built, ensure_service_images, ensure_vm_image, service_context, vm_context,
    webapp_context, webapp_steps_context, BuildOutcome, CONTEXT_HASH_LABEL, SERVICE_IMAGES,
    VM_IMAGE, WEBAPP_IMAGE, WEBAPP_STEPS_IMAGE,
};
pub use context::{BuildContext, ContextFile};
pub use k6::find_k6_binary;
pub use pull_mode::PullSource;
pub use transfer::{
    image_id, present_image_id, pull, retag, ship, split_reference, ShipOutcome, Via,
};

/// The host name errors carry for work on this machine's own engine.
const LOCAL: &str = "local";
