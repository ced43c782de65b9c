//! access.conf
