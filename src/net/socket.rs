//! Socket options and control messages through libc, where std and socket2 stop: an int
//! option, the ICMP error queue (IP_RECVERR), `recvmsg` with its ancillary data.

use std::io;
use std::os::fd::RawFd;

/// Enable IP_RECVERR / IPV6_RECVERR: ICMP errors about this socket are queued on its
/// error queue with the offender's address, type and code.
pub fn set_recverr(fd: RawFd, v6: bool) -> io::Result<()> {
    let (level, opt) = if v6 {
        (libc::SOL_IPV6, libc::IPV6_RECVERR)
    } else {
        (libc::SOL_IP, libc::IP_RECVERR)
    };
    setsockopt_int(fd, level, opt, 1)
}

pub fn setsockopt_int(
    fd: RawFd,
    level: libc::c_int,
    opt: libc::c_int,
    val: libc::c_int,
) -> io::Result<()> {
    // SAFETY: val lives for the call; the length matches its type.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            &val as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// recvmsg() into `data`, calling `on_cmsg(level, type, bytes)` for every control message.
pub fn recvmsg_cmsgs(
    fd: RawFd,
    data: &mut [u8],
    flags: libc::c_int,
    on_cmsg: impl FnMut(libc::c_int, libc::c_int, &[u8]),
) -> io::Result<usize> {
    recvmsg_named(fd, data, std::ptr::null_mut(), 0, flags, on_cmsg)
}

/// recvmsg() as `recvmsg_cmsgs`, also filling the sender's address into `name`
/// (`name_len` bytes; null for none).
pub fn recvmsg_named(
    fd: RawFd,
    data: &mut [u8],
    name: *mut libc::c_void,
    name_len: usize,
    flags: libc::c_int,
    mut on_cmsg: impl FnMut(libc::c_int, libc::c_int, &[u8]),
) -> io::Result<usize> {
    // u64 array: aligned for cmsghdr.
    let mut control = [0u64; 64];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: zeroed msghdr is valid; every pointer set below outlives the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = name;
    msg.msg_namelen = name_len as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: msg is fully initialised; name (when not null) has name_len writable bytes.
    let n = unsafe { libc::recvmsg(fd, &mut msg, flags) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the CMSG macros walk the control buffer the kernel filled, within msg_controllen.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            let c = &*cmsg;
            let start = libc::CMSG_DATA(cmsg);
            let len = (c.cmsg_len as usize).saturating_sub(start as usize - cmsg as usize);
            on_cmsg(
                c.cmsg_level,
                c.cmsg_type,
                std::slice::from_raw_parts(start, len),
            );
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok(n as usize)
}
