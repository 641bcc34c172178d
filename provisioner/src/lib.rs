//! clusterlab provisioner: cluster.yaml -> terraform -> hosts -> containers.
pub mod exec;
