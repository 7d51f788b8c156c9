// JPEG inverse DCT (see JPEG.swift; upsampling and colour are in JPEG+Color.swift).
//
// libjpeg's jidctint "islow" algorithm (Loeffler-Ligtenberg-Moschytz with 13-bit
// fixed-point constants, 2 extra bits between the column and row passes); same integer
// arithmetic, so the same output. Used by the sequential scans (block by block as they
// are decoded) and by the progressive path (once, after the last scan).

// Fixed-point constants FIX(x) = round(x * 2^13).
import FCNCore

private let c0_298631336 = 2446, c0_390180644 = 3196, c0_541196100 = 4433, c0_765366865 = 6270
private let c0_899976223 = 7373, c1_175875602 = 9633, c1_501321110 = 12299, c1_847759065 = 15137
private let c1_961570560 = 16069, c2_053119869 = 16819, c2_562915447 = 20995, c3_072711026 = 25172

/// Inverse DCT of one dequantized block (natural order) into 8x8 samples at `out`
/// (row stride `stride`), level-shifted by 128 and clamped to 0...255.
func jpegIDCTIslow(_ coef: UnsafeMutablePointer<Int32>, _ out: UnsafeMutablePointer<UInt8>, _ stride: Int) {
    let constBits = 13, pass1Bits = 2
    var ws = (Int(0), Int(0), Int(0), Int(0), Int(0), Int(0), Int(0), Int(0), Int(0), Int(0), Int(0), Int(0), Int(0), Int(0), Int(0), Int(0),
              Int(0), Int(0), Int(0), Int(0), Int(0), Int(0), Int(0), Int(0), Int(0), Int(0), Int(0), Int(0), Int(0), Int(0), Int(0), Int(0),
              Int(0), Int(0), Int(0), Int(0), Int(0), Int(0), Int(0), Int(0), Int(0), Int(0), Int(0), Int(0), Int(0), Int(0), Int(0), Int(0),
              Int(0), Int(0), Int(0), Int(0), Int(0), Int(0), Int(0), Int(0), Int(0), Int(0), Int(0), Int(0), Int(0), Int(0), Int(0), Int(0))
    withUnsafeMutableBytes(of: &ws) { raw in
        let w = raw.baseAddress!.assumingMemoryBound(to: Int.self)
        // Pass 1: columns, results scaled up by 2^pass1Bits.
        for col in 0..<8 {
            @inline(__always) func i(_ r: Int) -> Int { Int(coef[r * 8 + col]) }
            if i(1) == 0 && i(2) == 0 && i(3) == 0 && i(4) == 0 && i(5) == 0 && i(6) == 0 && i(7) == 0 {
                let dcval = i(0) << pass1Bits
                for r in 0..<8 { w[r * 8 + col] = dcval }
                continue
            }
            var z2 = i(2), z3 = i(6)
            var z1 = (z2 + z3) * c0_541196100
            var tmp2 = z1 + z3 * -c1_847759065
            var tmp3 = z1 + z2 * c0_765366865
            z2 = i(0); z3 = i(4)
            var tmp0 = (z2 + z3) << constBits
            var tmp1 = (z2 - z3) << constBits
            let tmp10 = tmp0 + tmp3, tmp13 = tmp0 - tmp3, tmp11 = tmp1 + tmp2, tmp12 = tmp1 - tmp2
            tmp0 = i(7); tmp1 = i(5); tmp2 = i(3); tmp3 = i(1)
            z1 = tmp0 + tmp3; z2 = tmp1 + tmp2; z3 = tmp0 + tmp2
            var z4 = tmp1 + tmp3
            let z5 = (z3 + z4) * c1_175875602
            tmp0 *= c0_298631336; tmp1 *= c2_053119869; tmp2 *= c3_072711026; tmp3 *= c1_501321110
            z1 *= -c0_899976223; z2 *= -c2_562915447; z3 *= -c1_961570560; z4 *= -c0_390180644
            z3 += z5; z4 += z5
            tmp0 += z1 + z3; tmp1 += z2 + z4; tmp2 += z2 + z3; tmp3 += z1 + z4
            let sh = constBits - pass1Bits, rnd = 1 << (sh - 1)
            w[0 * 8 + col] = (tmp10 + tmp3 + rnd) >> sh
            w[7 * 8 + col] = (tmp10 - tmp3 + rnd) >> sh
            w[1 * 8 + col] = (tmp11 + tmp2 + rnd) >> sh
            w[6 * 8 + col] = (tmp11 - tmp2 + rnd) >> sh
            w[2 * 8 + col] = (tmp12 + tmp1 + rnd) >> sh
            w[5 * 8 + col] = (tmp12 - tmp1 + rnd) >> sh
            w[3 * 8 + col] = (tmp13 + tmp0 + rnd) >> sh
            w[4 * 8 + col] = (tmp13 - tmp0 + rnd) >> sh
        }
        // Pass 2: rows, descale by 2^(constBits + pass1Bits + 3), add 128, clamp.
        let sh = constBits + pass1Bits + 3, rnd = 1 << (sh - 1)
        @inline(__always) func clamp(_ v: Int) -> UInt8 { UInt8(max(0, min(255, v + 128))) }
        for row in 0..<8 {
            let r = w + row * 8
            let o = out + row * stride
            var z2 = r[2], z3 = r[6]
            var z1 = (z2 + z3) * c0_541196100
            var tmp2 = z1 + z3 * -c1_847759065
            var tmp3 = z1 + z2 * c0_765366865
            var tmp0 = (r[0] + r[4]) << constBits
            var tmp1 = (r[0] - r[4]) << constBits
            let tmp10 = tmp0 + tmp3, tmp13 = tmp0 - tmp3, tmp11 = tmp1 + tmp2, tmp12 = tmp1 - tmp2
            tmp0 = r[7]; tmp1 = r[5]; tmp2 = r[3]; tmp3 = r[1]
            z1 = tmp0 + tmp3; z2 = tmp1 + tmp2; z3 = tmp0 + tmp2
            var z4 = tmp1 + tmp3
            let z5 = (z3 + z4) * c1_175875602
            tmp0 *= c0_298631336; tmp1 *= c2_053119869; tmp2 *= c3_072711026; tmp3 *= c1_501321110
            z1 *= -c0_899976223; z2 *= -c2_562915447; z3 *= -c1_961570560; z4 *= -c0_390180644
            z3 += z5; z4 += z5
            tmp0 += z1 + z3; tmp1 += z2 + z4; tmp2 += z2 + z3; tmp3 += z1 + z4
            o[0] = clamp((tmp10 + tmp3 + rnd) >> sh)
            o[7] = clamp((tmp10 - tmp3 + rnd) >> sh)
            o[1] = clamp((tmp11 + tmp2 + rnd) >> sh)
            o[6] = clamp((tmp11 - tmp2 + rnd) >> sh)
            o[2] = clamp((tmp12 + tmp1 + rnd) >> sh)
            o[5] = clamp((tmp12 - tmp1 + rnd) >> sh)
            o[3] = clamp((tmp13 + tmp0 + rnd) >> sh)
            o[4] = clamp((tmp13 - tmp0 + rnd) >> sh)
        }
    }
}
