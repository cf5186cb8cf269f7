//! The transactions a transaction-propagation measurement sends, built by hand: they spend and pay
//! the anyone-can-spend script P2WSH(OP_TRUE), so no wallet, key or signature is needed and every node
//! relays them as standard.

use sha2::{Digest, Sha256};

/// The anyone-can-spend output script: `OP_0 <sha256(OP_TRUE)>`, a P2WSH whose witness script is
/// `OP_TRUE`. Standard to pay to and to spend (unlike a bare `OP_TRUE`).
pub const ANYONE_SCRIPT: &str =
    "00204ae81572f06e1b88fd5ced7a1a000945432e83e1551e6f721ee9c00b8cc33260";
/// Blocks before a coinbase output can be spent (`nSpendHeight - nHeight >= 100`).
pub const COINBASE_MATURITY: u64 = 100;
/// Fee rate of every transaction here, in sat/vB: five times the default minimum relay fee, so a node
/// with a raised `-minrelaytxfee` up to that still relays them.
pub const FEE_RATE: u64 = 5;
/// Smallest output a measurement transaction pays (well above the dust limit of a P2WSH output).
pub const MIN_OUTPUT: u64 = 10_000;

/// The descriptor of [`ANYONE_SCRIPT`] (for `generatetodescriptor` and `scantxoutset`), without checksum.
pub fn anyone_descriptor() -> String {
    format!("raw({ANYONE_SCRIPT})")
}

/// An output to spend: its transaction (hex, as RPC shows it), index and value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coin {
    pub txid: String,
    pub vout: u32,
    pub sats: u64,
}

/// A serialized transaction and its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tx {
    pub hex: String,
    pub txid: String,
}

/// Virtual size of a transaction spending one anyone-can-spend input into `outputs` outputs:
/// 4 version + 1 input count + 41 input + count + 43 per output + 4 lock time, plus a 5-byte witness
/// (marker, flag, one item `OP_TRUE`) at a quarter.
pub fn vsize(outputs: usize) -> u64 {
    let base = 50 + varint(outputs as u64).len() as u64 + 43 * outputs as u64;
    (4 * base + 5).div_ceil(4)
}

/// Spends `coin` into `outputs` equal anyone-can-spend outputs (the rest of the value is the fee);
/// None when each output would be below [`MIN_OUTPUT`].
pub fn split(coin: &Coin, outputs: usize) -> Option<(Tx, u64)> {
    let fee = FEE_RATE * vsize(outputs);
    let each = coin.sats.checked_sub(fee)? / outputs.max(1) as u64;
    (outputs > 0 && each >= MIN_OUTPUT).then(|| (build(coin, &vec![each; outputs]), each))
}

/// Spends `coin` into one anyone-can-spend output; None when it would be below [`MIN_OUTPUT`].
pub fn spend(coin: &Coin) -> Option<Tx> {
    let value = coin.sats.checked_sub(FEE_RATE * vsize(1))?;
    (value >= MIN_OUTPUT).then(|| build(coin, &[value]))
}

/// Version 2, one input with an empty scriptSig and the witness `[OP_TRUE]`, the outputs, lock time 0.
fn build(coin: &Coin, values: &[u64]) -> Tx {
    let mut prevout = hex::decode(&coin.txid).expect("a txid is hex");
    prevout.reverse();
    let script = hex::decode(ANYONE_SCRIPT).expect("constant hex");
    let mut body = Vec::new();
    body.push(1u8);
    body.extend(&prevout);
    body.extend(coin.vout.to_le_bytes());
    body.push(0);
    body.extend(u32::MAX.to_le_bytes());
    body.extend(varint(values.len() as u64));
    for value in values {
        body.extend(value.to_le_bytes());
        body.extend(varint(script.len() as u64));
        body.extend(&script);
    }
    let version = 2u32.to_le_bytes();
    let lock_time = 0u32.to_le_bytes();
    let stripped = [&version[..], &body, &lock_time].concat();
    let witness = [1u8, 1, 0x51];
    let full = [&version[..], &[0, 1], &body, &witness, &lock_time].concat();
    let mut id = Sha256::digest(Sha256::digest(&stripped)).to_vec();
    id.reverse();
    Tx {
        hex: hex::encode(full),
        txid: hex::encode(id),
    }
}

fn varint(n: u64) -> Vec<u8> {
    match n {
        0..=0xfc => vec![n as u8],
        0xfd..=0xffff => [&[0xfd][..], &(n as u16).to_le_bytes()].concat(),
        0x1_0000..=0xffff_ffff => [&[0xfe][..], &(n as u32).to_le_bytes()].concat(),
        _ => [&[0xff][..], &n.to_le_bytes()].concat(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_pays_to_the_hash_of_op_true() {
        let hash = hex::encode(Sha256::digest([0x51]));
        assert_eq!(ANYONE_SCRIPT, format!("0020{hash}"));
    }

    /// A spend bitcoind (Knots 29.4, regtest) accepted with `sendrawtransaction`, which answered with
    /// this txid; the fee then was 1000 sat, here it is FEE_RATE * 96 vB.
    #[test]
    fn a_spend_bitcoind_accepted_serializes_the_same() {
        let coin = Coin {
            txid: "18b76b7fb9678ee09f51d051c3b8428ebddfafb3fca629e3c7b73e07f522b373".into(),
            vout: 0,
            sats: 5_000_000_000 - 1000 + FEE_RATE * vsize(1),
        };
        let tx = spend(&coin).unwrap();
        assert_eq!(
            tx.hex,
            "0200000000010173b322f5073eb7c7e329a6fcb3afdfbd8e42b8c351d0519fe08e67b97f6bb7180000000000ffffffff0118ee052a010000002200204ae81572f06e1b88fd5ced7a1a000945432e83e1551e6f721ee9c00b8cc3326001015100000000"
        );
        assert_eq!(
            tx.txid,
            "c3720513bd4aed09f2d47e8030c170617682f56b073823cd132ebc3bdf9605ee"
        );
        // bitcoind reported vsize 96 for a one-output spend and 268 for five outputs.
        assert_eq!((vsize(1), vsize(5)), (96, 268));
    }

    #[test]
    fn split_shares_the_value_and_refuses_dust() {
        let coin = Coin {
            txid: "00".repeat(32),
            vout: 3,
            sats: 50 * 100_000_000,
        };
        let (tx, each) = split(&coin, 5).unwrap();
        assert_eq!(each, (coin.sats - FEE_RATE * 268) / 5);
        // Five outputs of 43 bytes each after the count.
        assert_eq!(tx.hex.len() / 2, 4 + 2 + 1 + 41 + 1 + 5 * 43 + 3 + 4);
        assert!(split(&coin, 0).is_none());
        let small = Coin {
            sats: 20_000,
            ..coin
        };
        assert!(split(&small, 5).is_none());
        assert!(spend(&small).is_some());
        assert!(spend(&Coin { sats: 100, ..small }).is_none());
        assert_eq!(vsize(300), 50 + 3 + 43 * 300 + 2);
    }
}
