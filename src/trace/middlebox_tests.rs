//! The middlebox report on quotes captured in the lab.
