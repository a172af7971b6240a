//! The ZooKeeper client protocol decoder of `keeperkit serve` on arbitrary bytes: a
//! stream cut into frames by `FrameBuffer` (limit 64 KiB), the first frame as a connect
//! request and every other one as a request. Never panics or over-allocates; whatever
//! decodes re-encodes into a frame that decodes to the same value, and encoding is a
//! fixed point.
#![no_main]

use keeperkit_server::proto::{
    decode_request, encode_connect, encode_request, ConnectRequest, FrameBuffer,
};
use libfuzzer_sys::fuzz_target;

const MAX: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let mut fb = FrameBuffer::new(MAX);
    // Feed in uneven pieces, as a socket would deliver them.
    for chunk in data.chunks(7) {
        fb.extend(chunk);
    }
    let mut first = true;
    while let Ok(Some(payload)) = fb.next_frame() {
        assert!(payload.len() <= MAX);
        if std::mem::take(&mut first) {
            if let Ok(c) = ConnectRequest::decode(&payload, MAX) {
                let bytes = encode_connect(&c);
                let again = ConnectRequest::decode(&bytes[4..], MAX).expect("re-encoded connect");
                assert_eq!(again, c);
            }
            continue;
        }
        if let Ok((hdr, req)) = decode_request(&payload, MAX) {
            assert_eq!(hdr.op, req.op());
            let bytes = encode_request(hdr.xid, &req);
            let (hdr2, again) =
                decode_request(&bytes[4..], usize::MAX).expect("a re-encoded request decodes");
            assert_eq!((hdr2, &again), (hdr, &req));
            assert_eq!(encode_request(hdr.xid, &again), bytes, "encoding is a fixed point");
        }
    }
});
