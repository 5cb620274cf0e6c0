//! What both controllers and every verb share: the kube client builder.

pub mod client;
