//! Places a test makes and removes: network namespaces and a veth pair, a
//! routed path of three hosts,
//! cgroups, a real nginx inside them; what a device looks like (`device`).

pub mod cgroup;
pub mod device;
pub mod fleet;
pub mod netns;
pub mod nginx;
pub mod path;
