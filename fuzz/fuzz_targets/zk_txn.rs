//! `Txn::decode_from` on arbitrary bytes: never panics; whatever decodes re-encodes
//! into bytes that decode to the same txn.
#![no_main]

use keeperkit_model::Txn;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(txn) = Txn::decode_from(data) {
        assert_eq!(txn.header.op, txn.body.op());
        let bytes = txn.to_bytes();
        assert!(bytes.len() <= data.len(), "re-encoding never grows a decoded txn");
        let again = Txn::decode_from(&bytes).expect("a re-encoded txn decodes");
        assert_eq!(again, txn);
        assert_eq!(again.to_bytes(), bytes, "encoding is a fixed point");
    }
});
