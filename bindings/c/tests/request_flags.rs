//! The `_with` request functions' flags: `ZR_RESEND` is accepted, any other
//! bit is refused precisely (the behaviour of a resent request across a lost
//! session is tested through the Go SDK, with a real relay).

use std::ffi::{CStr, CString};
use std::ptr::null_mut;

use zerorelay_c::*;

/// One `_with` function with its other arguments bound: (flags, out_request).
type Call<'a> = &'a dyn Fn(u32, *mut u64) -> zr_status;

fn s(v: &str) -> CString {
    CString::new(v).unwrap()
}

fn last() -> (String, String) {
    let read =
        |p: *const std::ffi::c_char| unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_owned();
    (read(zr_last_error_code()), read(zr_last_error()))
}

#[test]
fn unknown_flag_bits_are_refused_and_zr_resend_is_accepted() {
    unsafe {
        let mut server = null_mut();
        assert_eq!(
            zr_server_start(
                s(r#"{"server":{"listen":"127.0.0.1:0"}}"#).as_ptr(),
                &mut server
            ),
            zr_status::ZR_OK
        );
        let mut addr = null_mut();
        assert_eq!(zr_server_address(server, &mut addr), zr_status::ZR_OK);
        let url = s(&format!(
            "ws://{}/ws",
            CStr::from_ptr(addr).to_str().unwrap()
        ));
        zr_string_free(addr);
        let mut c = null_mut();
        assert_eq!(
            zr_client_connect(url.as_ptr(), s(r#"{"user":"a"}"#).as_ptr(), &mut c),
            zr_status::ZR_OK
        );
        let (g, d, u, m) = (s("g"), s("1"), s("bob"), s("m"));
        let calls: [(&str, Call); 5] = [
            ("publish", &|f, out| {
                zr_client_publish_with(c, g.as_ptr(), d.as_ptr(), false, f, out)
            }),
            ("broadcast", &|f, out| {
                zr_client_broadcast_with(c, d.as_ptr(), true, f, out)
            }),
            ("send_to_user", &|f, out| {
                zr_client_send_to_user_with(c, u.as_ptr(), d.as_ptr(), f, out)
            }),
            ("send_to_session", &|f, out| {
                zr_client_send_to_session_with(c, u.as_ptr(), d.as_ptr(), f, out)
            }),
            ("rpc", &|f, out| {
                zr_client_rpc_with(c, m.as_ptr(), std::ptr::null(), f, out)
            }),
        ];
        for (name, call) in calls {
            let mut id = 0;
            for bad in [2, ZR_RESEND | 4, 0x8000_0000] {
                assert_eq!(
                    call(bad, &mut id),
                    zr_status::ZR_ERR_INVALID_ARGUMENT,
                    "{name} {bad:#x}"
                );
                let (code, message) = last();
                assert_eq!(code, "invalid_argument", "{name}");
                let unknown = format!("unknown bits {:#x}", bad & !ZR_RESEND);
                assert!(message.contains(&unknown), "{name}: {message}");
            }
            for good in [0, ZR_RESEND] {
                assert_eq!(
                    call(good, &mut id),
                    zr_status::ZR_OK,
                    "{name} {good:#x}: {:?}",
                    last()
                );
            }
            // The out pointer is still checked.
            assert_eq!(
                call(ZR_RESEND, null_mut()),
                zr_status::ZR_ERR_INVALID_ARGUMENT,
                "{name}"
            );
        }
        assert_eq!(zr_client_close(c), zr_status::ZR_OK);
        zr_client_free(c);
        assert_eq!(zr_server_stop(server), zr_status::ZR_OK);
        zr_server_free(server);
    }
}
