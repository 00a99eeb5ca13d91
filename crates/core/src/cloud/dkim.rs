//! DKIM: the public key record (`v=DKIM1; k=rsa; p=...`) derived from a PEM RSA private key,
//! on the controller (the private key never leaves it). PKCS#1 (`BEGIN RSA PRIVATE KEY`, what
//! `opendkim-genkey` writes) and PKCS#8 (`BEGIN PRIVATE KEY`, what `openssl genpkey` writes).

use base64::Engine;

/// `v=DKIM1; k=rsa; p=<base64 of the DER SubjectPublicKeyInfo>` for the private key `pem`.
pub fn record(pem: &str) -> Result<String, String> {
    let spki = public_key_info(pem)?;
    let p = base64::engine::general_purpose::STANDARD.encode(spki);
    Ok(format!("v=DKIM1; k=rsa; p={p}"))
}

/// The DER SubjectPublicKeyInfo of the RSA private key `pem`.
pub fn public_key_info(pem: &str) -> Result<Vec<u8>, String> {
    let (label, der) = pem_block(pem)?;
    let rsa_key = match label.as_str() {
        "RSA PRIVATE KEY" => der,
        "PRIVATE KEY" => pkcs8_rsa_key(&der)?,
        other => {
            return Err(format!(
                "it is a PEM `{other}`, not an RSA private key (BEGIN RSA PRIVATE KEY or BEGIN PRIVATE KEY)"
            ))
        }
    };
    // RSAPrivateKey ::= SEQUENCE { version, modulus, publicExponent, ... }
    let (body, _) = expect(&rsa_key, 0x30, "the RSA key")?;
    let (_, rest) = tlv(body, "the RSA key's version")?;
    let (modulus, rest) = tlv(rest, "the modulus")?;
    let (exponent, _) = tlv(rest, "the public exponent")?;
    if modulus.0 != 0x02 || exponent.0 != 0x02 {
        return Err("the RSA key's modulus or exponent is not an INTEGER".into());
    }
    // RSAPublicKey ::= SEQUENCE { modulus, publicExponent }
    let mut public = Vec::new();
    public.extend_from_slice(modulus.2);
    public.extend_from_slice(exponent.2);
    let public = encode(0x30, &public);
    // BIT STRING: no unused bits, then the key.
    let mut bits = vec![0u8];
    bits.extend_from_slice(&public);
    // AlgorithmIdentifier: rsaEncryption (1.2.840.113549.1.1.1), NULL parameters.
    const RSA_ALGORITHM: [u8; 15] = [
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let mut info = RSA_ALGORITHM.to_vec();
    info.extend_from_slice(&encode(0x03, &bits));
    Ok(encode(0x30, &info))
}

/// The label and the decoded bytes of the first PEM block of `text`.
fn pem_block(text: &str) -> Result<(String, Vec<u8>), String> {
    let mut lines = text.lines().map(str::trim);
    let label = lines
        .by_ref()
        .find_map(|l| l.strip_prefix("-----BEGIN ")?.strip_suffix("-----"))
        .ok_or("it holds no PEM block (-----BEGIN ...-----)")?
        .to_string();
    let end = format!("-----END {label}-----");
    let mut body = String::new();
    for l in lines {
        if l == end {
            let der = base64::engine::general_purpose::STANDARD
                .decode(body.as_bytes())
                .map_err(|e| format!("its PEM body is not base64: {e}"))?;
            return Ok((label, der));
        }
        if l.contains(':') {
            return Err("it is an encrypted PEM key: give the key without a passphrase".into());
        }
        body.push_str(l);
    }
    Err(format!("its PEM block has no `{end}` line"))
}

/// PrivateKeyInfo ::= SEQUENCE { version, AlgorithmIdentifier, privateKey OCTET STRING }:
/// the RSAPrivateKey inside, once the algorithm is checked to be RSA.
fn pkcs8_rsa_key(der: &[u8]) -> Result<Vec<u8>, String> {
    let (body, _) = expect(der, 0x30, "the PKCS#8 key")?;
    let (_, rest) = tlv(body, "the PKCS#8 version")?;
    let (algorithm, rest) = tlv(rest, "the key's algorithm")?;
    const RSA_OID: [u8; 11] = [
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
    ];
    if !algorithm.1.starts_with(&RSA_OID) {
        return Err("it is not an RSA key (DKIM records here are k=rsa)".into());
    }
    let (key, _) = tlv(rest, "the private key")?;
    if key.0 != 0x04 {
        return Err("the PKCS#8 private key is not an OCTET STRING".into());
    }
    Ok(key.1.to_vec())
}

/// One DER element: (tag, contents, the whole element), and what follows it.
type Element<'a> = (u8, &'a [u8], &'a [u8]);

fn tlv<'a>(der: &'a [u8], what: &str) -> Result<(Element<'a>, &'a [u8]), String> {
    let short = || format!("{what} is cut short (not a DER key)");
    let tag = *der.first().ok_or_else(short)?;
    let first = *der.get(1).ok_or_else(short)?;
    let (len, head) = if first < 0x80 {
        (first as usize, 2)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 {
            return Err(format!("{what} has a length DER does not allow"));
        }
        let bytes = der.get(2..2 + n).ok_or_else(short)?;
        (
            bytes.iter().fold(0usize, |a, b| (a << 8) | *b as usize),
            2 + n,
        )
    };
    let end = head.checked_add(len).ok_or_else(short)?;
    let contents = der.get(head..end).ok_or_else(short)?;
    Ok(((tag, contents, &der[..end]), &der[end..]))
}

fn expect<'a>(der: &'a [u8], tag: u8, what: &str) -> Result<(&'a [u8], &'a [u8]), String> {
    let ((t, contents, _), rest) = tlv(der, what)?;
    if t != tag {
        return Err(format!("{what} is not a DER SEQUENCE"));
    }
    Ok((contents, rest))
}

fn encode(tag: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = contents.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend_from_slice(&bytes);
    }
    out.extend_from_slice(contents);
    out
}
