// Checksums of the PNG and zlib formats.
//
// CRC-32: reflected polynomial 0xEDB88320, initial value and final xor 0xFFFFFFFF (PNG
// chunks, ISO 3309). Adler-32: two sums modulo 65521 (zlib trailer, RFC 1950).

import FCNCore

/// Lookup table of the byte-wise reflected CRC-32.
private let crcTable: [UInt32] = (0..<256).map { n -> UInt32 in
    var c = UInt32(n)
    for _ in 0..<8 { c = (c & 1) != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
    return c
}

/// CRC-32 of `bytes[range]`, continuing from `crc` (pass the previous result to chain).
package func crc32<C: Collection>(_ bytes: C, crc: UInt32 = 0) -> UInt32 where C.Element == UInt8 {
    var c = ~crc
    crcTable.withUnsafeBufferPointer { t in
        for b in bytes { c = t[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
    }
    return ~c
}

/// Adler-32 of `bytes`, continuing from `adler` (1 for a fresh checksum).
func adler32(_ bytes: UnsafeBufferPointer<UInt8>, adler: UInt32 = 1) -> UInt32 {
    var a = adler & 0xFFFF, b = adler >> 16
    var i = 0
    let n = bytes.count
    while i < n {
        let end = min(n, i + 5552)   // largest run before the sums can overflow 32 bits
        while i < end { a &+= UInt32(bytes[i]); b &+= a; i += 1 }
        a %= 65521; b %= 65521
    }
    return (b << 16) | a
}

/// Adler-32 of an array.
func adler32(_ bytes: [UInt8]) -> UInt32 { bytes.withUnsafeBufferPointer { adler32($0) } }
