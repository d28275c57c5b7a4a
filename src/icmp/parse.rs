//! PLACEHOLDER until the real parser lands (being written with captured fixtures).
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotedTcp {
    pub src: SocketAddr,
    pub dst: SocketAddr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IcmpError {
    pub from: IpAddr,
    pub v6: bool,
    pub icmp_type: u8,
    pub code: u8,
    pub info: u32,
    pub quoted: Option<QuotedTcp>,
    pub quoted_proto: Option<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    Truncated(&'static str),
}

pub fn parse_icmpv4_packet(_buf: &[u8]) -> Result<Option<IcmpError>, ParseError> {
    Err(ParseError::Truncated("x"))
}
pub fn parse_icmpv6_message(_buf: &[u8], _from: Ipv6Addr) -> Result<Option<IcmpError>, ParseError> {
    Err(ParseError::Truncated("x"))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description {
    pub reason: String,
    pub title: String,
}
pub fn describe(_v6: bool, t: u8, c: u8, _info: u32) -> Description {
    Description {
        reason: format!("{t}/{c}"),
        title: format!("{t}/{c}"),
    }
}
impl IcmpError {
    pub fn describe(&self) -> Description {
        describe(self.v6, self.icmp_type, self.code, self.info)
    }
}
