//! Classic and rotating knock sequences (to be written).
