// Progressive JPEG (SOF2) scans: spectral selection and successive approximation (ITU
// T.81 G.1.2), decoded the way libjpeg's jdphuff.c does so the coefficients, and then the
// pixels, equal Pillow's.
//
// A progressive image arrives as a sequence of scans, each coding one band of zigzag
// coefficients [Ss, Se] of some components at one bit position Al:
//   DC first  (Ss = 0, Ah = 0): DC difference per block, stored as value << Al; may be
//             interleaved over several components (MCU order, as in a sequential scan).
//   DC refine (Ss = 0, Ah != 0): one bit per block, OR-ed in at bit Al.
//   AC first  (Ss > 0, Ah = 0): run/size symbols as in a sequential scan, value << Al, plus
//             EOB runs: symbol r<<4 (r < 15) ends this block and the next 2^r + bits(r) - 1.
//   AC refine (Ss > 0, Ah != 0): new coefficients of magnitude 1 << Al, and one correction
//             bit for every already-nonzero coefficient passed over (also inside EOB runs).
// AC scans have one component and visit its `blocksW` x `blocksH` blocks (non-interleaved).
// Coefficients stay in `JPEGDecoder.coefs` (Int16, zigzag order: each scan walks a
// contiguous range) until the end of the file; `finishProgressive` then dequantizes with
// the table latched at each component's first scan and runs the same IDCT as the
// sequential path into the component planes, so upsampling and colour are shared.
// Checks as libjpeg's start_pass_phuff_decoder (errors there are errors here): Se >= Ss,
// Se <= 63, DC scans have Se = 0, AC scans one component, refinements Al = Ah - 1, Al <=
// 13. libjpeg only warns when a band is refined out of order; so do we (no error). Each
// component must have had a DC first scan (libjpeg would output flat grey there); this is
// what bounds the work by the input size (every block costs >= 1 bit of a DC first scan).
// No inter-block smoothing: libjpeg applies it only when one of the first coefficients is
// never refined to bit 0, which Pillow's and libjpeg's scan scripts never leave.

import FCNCore
extension JPEGDecoder {
    /// Validates a progressive scan header and updates the per-coefficient progression
    /// state; latches each component's quantization table at its first scan.
    mutating func startProgressiveScan(_ idx: [Int], ss: Int, se: Int, ah: Int, al: Int) throws {
        let isDC = ss == 0
        var bad = false
        if isDC { bad = se != 0 } else { bad = ss > se || se > 63 || idx.count != 1 }
        if ah != 0 && al != ah - 1 { bad = true }
        if al > 13 { bad = true }
        guard !bad else { throw fail("invalid progressive scan Ss=\(ss) Se=\(se) Ah=\(ah) Al=\(al) over \(idx.count) component(s)") }
        for ci in idx {
            if comps[ci].quant.isEmpty { comps[ci].quant = quant[comps[ci].tq] }
            for k in ss...se { comps[ci].coefBits[k] = al }
        }
    }

    /// Decodes one progressive scan into the coefficient buffers.
    mutating func decodeProgressiveScan(_ idx: [Int], ss: Int, se: Int, ah: Int, al: Int) throws {
        resetBits()
        eobrun = 0
        for ci in idx { comps[ci].pred = 0 }
        let kind = ss == 0 ? (ah == 0 ? 0 : 1) : (ah == 0 ? 2 : 3)
        var restartsLeft = restartInterval
        @inline(__always) func restart(_ d: inout JPEGDecoder) throws {
            if d.restartInterval > 0 {
                if restartsLeft == 0 {
                    try d.processRestart()
                    for ci in idx { d.comps[ci].pred = 0 }
                    d.eobrun = 0
                    restartsLeft = d.restartInterval
                }
                restartsLeft -= 1
            }
        }
        if idx.count == 1 {
            // Non-interleaved (every AC scan): the component's own blocks, row by row. The
            // table and buffer are fetched once (a per-block copy costs reference counting).
            let ci = idx[0], buf = coefs[ci], bw = comps[ci].blocksW, bh = comps[ci].blocksH
            let t = (kind == 0 ? dc[comps[ci].dcTable] : kind >= 2 ? ac[comps[ci].acTable] : nil) ?? JPEGHuffman.empty
            for by in 0..<bh {
                var blk = buf.block(0, by)
                for _ in 0..<bw {
                    try restart(&self)
                    switch kind {
                    case 0: try dcFirst(blk, ci, t, al)
                    case 1: if try bits(1) == 1 { blk[0] |= Int16(truncatingIfNeeded: 1 << al) }
                    case 2: try acFirst(blk, t, ss, se, al)
                    default: try acRefine(blk, t, ss, se, al)
                    }
                    blk += 64
                }
            }
            return
        }
        // Interleaved: DC scans only (checked), in MCU order as in a sequential scan.
        let tables = idx.map { dc[comps[$0].dcTable] ?? JPEGHuffman.empty }
        let bufs = idx.map { coefs[$0] }
        for my in 0..<mcusY {
            for mx in 0..<mcusX {
                try restart(&self)
                for k in 0..<idx.count {
                    let c = comps[idx[k]]
                    for by in 0..<c.v {
                        for bx in 0..<c.h {
                            let blk = bufs[k].block(mx * c.h + bx, my * c.v + by)
                            if kind == 0 {
                                try dcFirst(blk, idx[k], tables[k], al)
                            } else if try bits(1) == 1 {
                                blk[0] |= Int16(truncatingIfNeeded: 1 << al)
                            }
                        }
                    }
                }
            }
        }
    }

    @inline(__always) mutating func dcFirst(_ blk: UnsafeMutablePointer<Int16>, _ ci: Int, _ t: JPEGHuffman, _ al: Int) throws {
        let s = try decodeSymbol(t)
        guard s <= 15 else { throw fail("DC magnitude category \(s) > 15") }
        let diff = s == 0 ? 0 : extend(try bits(s), s)
        comps[ci].pred += diff   // an Int, as libjpeg's last_dc_val; the stored value is 16-bit
        blk[0] = Int16(truncatingIfNeeded: comps[ci].pred << al)
    }

    @inline(__always) mutating func acFirst(_ blk: UnsafeMutablePointer<Int16>, _ t: JPEGHuffman, _ ss: Int, _ se: Int, _ al: Int) throws {
        if eobrun > 0 { eobrun -= 1; return }
        var k = ss
        while k <= se {
            let rs = try decodeSymbol(t)
            let r = rs >> 4, s = rs & 15
            if s != 0 {
                k += r
                guard k <= se else { throw fail("AC coefficient index \(k) past the band end \(se)") }
                blk[k] = Int16(truncatingIfNeeded: extend(try bits(s), s) << al)
                k += 1
            } else if r == 15 {
                k += 16   // ZRL: 16 zeros
            } else {
                eobrun = (1 << r) - 1   // this block ends here, and eobrun more blocks
                if r > 0 { eobrun += try bits(r) }
                break
            }
        }
    }

    /// One correction bit for a nonzero coefficient: if set, its magnitude gains bit `p1`.
    @inline(__always) mutating func refineNonzero(_ c: UnsafeMutablePointer<Int16>, _ p1: Int16) throws {
        if try bits(1) == 1, c.pointee & p1 == 0 {
            c.pointee = c.pointee >= 0 ? c.pointee &+ p1 : c.pointee &- p1
        }
    }

    @inline(__always) mutating func acRefine(_ blk: UnsafeMutablePointer<Int16>, _ t: JPEGHuffman, _ ss: Int, _ se: Int, _ al: Int) throws {
        let p1 = Int16(truncatingIfNeeded: 1 << al)
        var k = ss
        if eobrun == 0 {
            while k <= se {
                let rs = try decodeSymbol(t)
                var r = rs >> 4
                let s = rs & 15
                var newValue: Int16 = 0
                if s != 0 {
                    // The size should be 1 (libjpeg warns otherwise and goes on the same way).
                    newValue = try bits(1) == 1 ? p1 : -p1
                } else if r != 15 {
                    eobrun = 1 << r
                    if r > 0 { eobrun += try bits(r) }
                    break   // the rest of this block is refined as part of the EOB run
                }
                // Pass over nonzero coefficients (refining them) and r zero ones; stop at
                // the zero that receives the new coefficient.
                while k <= se {
                    let c = blk + k
                    if c.pointee != 0 {
                        try refineNonzero(c, p1)
                    } else {
                        if r == 0 { break }
                        r -= 1
                    }
                    k += 1
                }
                if newValue != 0 {
                    guard k <= se else { throw fail("AC refinement places a coefficient past the band end \(se)") }
                    blk[k] = newValue
                }
                k += 1
            }
        }
        if eobrun > 0 {
            while k <= se {
                if blk[k] != 0 { try refineNonzero(blk + k, p1) }
                k += 1
            }
            eobrun -= 1
        }
    }

    /// After the last scan: dequantizes every block and writes its samples into the plane.
    mutating func finishProgressive() throws {
        for ci in comps.indices where comps[ci].coefBits[0] < 0 {
            throw fail("component \(comps[ci].id) of a progressive image has no DC scan (truncated?)")
        }
        let coef = UnsafeMutablePointer<Int32>.allocate(capacity: 64)
        defer { coef.deallocate() }
        for ci in comps.indices {
            let buf = coefs[ci], stride = comps[ci].stride
            let q = comps[ci].quant
            var plane = comps[ci].plane
            comps[ci].plane = []   // avoid copy-on-write while writing
            q.withUnsafeBufferPointer { q in
                jpegZigzag.withUnsafeBufferPointer { zz in
                    plane.withUnsafeMutableBufferPointer { pl in
                        for by in 0..<buf.rows {
                            for bx in 0..<buf.blocksPerRow {
                                let blk = buf.block(bx, by)
                                for k in 0..<64 {
                                    let z = zz[k]
                                    coef[z] = Int32(truncatingIfNeeded: Int(blk[k]) * q[z])
                                }
                                jpegIDCTIslow(coef, pl.baseAddress! + by * 8 * stride + bx * 8, stride)
                            }
                        }
                    }
                }
            }
            comps[ci].plane = plane
        }
        coefs = []
    }
}
