//! The jvmapm JVMTI agent (`libjvmapm_agent.so`). It arrives with the agent
//! issue; the crate exists now so the workspace has its final shape.
