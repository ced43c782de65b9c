//! Packet capture: AF_PACKET sockets with an in-kernel BPF filter (to be written).
