//! The terminal XLog viewer of jvmapm (`jvmapm xlog`). It arrives with the
//! viewer issue; the crate exists now so the workspace has its final shape.
