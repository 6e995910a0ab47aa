;; The trainer's float32 kernels in WebAssembly SIMD128, written by hand. Assembled at install time
;; by src/cli/build-wasm.ts (wabt) into kernels-wasm.ts; wasm-kernels.ts calls them.
;;
;; Conventions:
;; - Every pointer is a byte address in the imported memory (the arena of arena.ts); sizes and
;;   strides are counted in float32 values.
;; - Every result is computed in a fixed order that does not depend on how the work is split: gemm
;;   adds the terms of each C value in the order p = 0, 1, ..., k-1, whatever the blocking or the
;;   range of rows a call covers (dot_nt in its own fixed order, see there). So results are
;;   bit-identical run to run, and stay so when helper threads each take a range of rows (i0, i1).
;; - No FMA: a multiply and an add round separately, as in the JS kernels.
;; - Scratch memory comes from the caller (gemm's `work`), so calls on different threads, each with
;;   its own work area, never share anything but their inputs.
(module
  (import "env" "memory" (memory 1 65536 shared))

  ;; ------------------------------------------------------------------------------------------
  ;; Matrix product
  ;;
  ;;   C(i, j) = (accumulate ? C(i, j) : 0) + Σ_p A(i, p)·B(p, j)   for i0 <= i < i1, j < n, p < k
  ;;
  ;; with A(i, p) at a + 4·(i·aRow + p·aCol), B(p, j) at b + 4·(p·bRow + j·bCol) and C row-major
  ;; from c, rows ldc values apart. The strides express a transposed operand without copying it.
  ;;
  ;; Blocking (Goto's): columns in blocks of up to NC = 1024, the inner dimension in equal blocks of
  ;; at most KC = 256, rows in blocks of up to MC = 64. For each (column, inner) block the block of B
  ;; is packed into panels 8 columns wide; for each row block the block of A into panels 4 rows
  ;; high; then a 4×8 micro-kernel keeps 8 vectors of sums in registers while p runs over the inner
  ;; block. Edges are padded with zeros when packing, computed in full in a small tile and only the
  ;; real part written back. Between inner blocks the sums are stored in C and read back: they are
  ;; float32 either way, so the result is the plain sequential sum.
  ;; ------------------------------------------------------------------------------------------

  ;; Bytes of scratch one gemm call needs at `work`: packed B (KC·NC values), packed A (room for
  ;; MC rows of up to 2048 inner steps: gemm_keep keeps every inner block of A there), one 4×8
  ;; edge tile.
  (func $gemm_work_bytes (export "gemm_work_bytes") (result i32)
    (i32.const 1573120)) ;; 4·(256·1024 + 64·2048 + 32)

  ;; gemm_keep's mode for the gemm call it makes (0 in every other call), and which operand the
  ;; work area holds packed in full from this thread's last gemm call: 1 A, 2 B, 0 neither.
  (global $keepMode (mut i32) (i32.const 0))
  (global $kept (mut i32) (i32.const 0))

  ;; gemm, for one thread's successive parts of one product (kernel-pool.ts: a thread's range of a
  ;; task cut into pieces), which share one operand: the rows of C split by columns share all of
  ;; A, a split by rows shares all of B. Mode 1 packs A whole (every inner block, each at its own
  ;; place) and keeps it; mode 2 uses the A that the thread's last call kept, when it did, else
  ;; packs as mode 1; modes 3 and 4 the same for B. Only an operand that fits in one block
  ;; (A: at most MC rows and 2048 inner steps; B: at most NC columns and KC·NC values) is kept;
  ;; any other call packs as gemm does. The caller guarantees that mode 2 or 4 comes with the same
  ;; operand (address, strides, k, and A's rows or B's columns) as the call that kept it. The
  ;; values computed are gemm's.
  (func $gemm_keep (export "gemm_keep")
    (param $a i32) (param $aRow i32) (param $aCol i32)
    (param $b i32) (param $bRow i32) (param $bCol i32)
    (param $c i32) (param $ldc i32)
    (param $i0 i32) (param $i1 i32) (param $k i32) (param $n i32)
    (param $accumulate i32) (param $work i32) (param $mode i32)
    (global.set $keepMode (local.get $mode))
    (call $gemm (local.get $a) (local.get $aRow) (local.get $aCol) (local.get $b) (local.get $bRow) (local.get $bCol)
      (local.get $c) (local.get $ldc) (local.get $i0) (local.get $i1) (local.get $k) (local.get $n)
      (local.get $accumulate) (local.get $work))
    (global.set $keepMode (i32.const 0)))

  ;; Products of at most this many multiply-adds take gemm_small (measured: 1×8×32 takes 300 ns
  ;; so and 440 ns packed, 32×32×1 980 and 1360 ns, 32×8×32 2000 and 1170 ns). Mutable, so that it
  ;; can be tuned and tested from outside; it never changes a result.
  (global $SMALL_GEMM (export "small_gemm") (mut i32) (i32.const 1024))

  (func $min (param $x i32) (param $y i32) (result i32)
    (select (local.get $x) (local.get $y) (i32.lt_s (local.get $x) (local.get $y))))

  ;; The 4×8 micro-kernel: the tile at c (rows ldcb bytes apart) gets (load ? tile : 0) plus the
  ;; product of a packed A panel (kc steps of 4 values) and a packed B panel (kc steps of 8).
  ;; kc >= 1.
  (func $micro_4x8 (param $pa i32) (param $pb i32) (param $c i32) (param $ldcb i32) (param $kc i32) (param $load i32)
    (local $c00 v128) (local $c01 v128) (local $c10 v128) (local $c11 v128)
    (local $c20 v128) (local $c21 v128) (local $c30 v128) (local $c31 v128)
    (local $b0 v128) (local $b1 v128) (local $x v128)
    (local $r1 i32) (local $r2 i32) (local $r3 i32) (local $end i32)
    (local.set $r1 (i32.add (local.get $c) (local.get $ldcb)))
    (local.set $r2 (i32.add (local.get $r1) (local.get $ldcb)))
    (local.set $r3 (i32.add (local.get $r2) (local.get $ldcb)))
    (if (local.get $load)
      (then
        (local.set $c00 (v128.load (local.get $c)))
        (local.set $c01 (v128.load offset=16 (local.get $c)))
        (local.set $c10 (v128.load (local.get $r1)))
        (local.set $c11 (v128.load offset=16 (local.get $r1)))
        (local.set $c20 (v128.load (local.get $r2)))
        (local.set $c21 (v128.load offset=16 (local.get $r2)))
        (local.set $c30 (v128.load (local.get $r3)))
        (local.set $c31 (v128.load offset=16 (local.get $r3)))))
    (local.set $end (i32.add (local.get $pb) (i32.shl (local.get $kc) (i32.const 5))))
    (loop $p
      (local.set $b0 (v128.load (local.get $pb)))
      (local.set $b1 (v128.load offset=16 (local.get $pb)))
      (local.set $x (v128.load32_splat (local.get $pa)))
      (local.set $c00 (f32x4.add (local.get $c00) (f32x4.mul (local.get $x) (local.get $b0))))
      (local.set $c01 (f32x4.add (local.get $c01) (f32x4.mul (local.get $x) (local.get $b1))))
      (local.set $x (v128.load32_splat offset=4 (local.get $pa)))
      (local.set $c10 (f32x4.add (local.get $c10) (f32x4.mul (local.get $x) (local.get $b0))))
      (local.set $c11 (f32x4.add (local.get $c11) (f32x4.mul (local.get $x) (local.get $b1))))
      (local.set $x (v128.load32_splat offset=8 (local.get $pa)))
      (local.set $c20 (f32x4.add (local.get $c20) (f32x4.mul (local.get $x) (local.get $b0))))
      (local.set $c21 (f32x4.add (local.get $c21) (f32x4.mul (local.get $x) (local.get $b1))))
      (local.set $x (v128.load32_splat offset=12 (local.get $pa)))
      (local.set $c30 (f32x4.add (local.get $c30) (f32x4.mul (local.get $x) (local.get $b0))))
      (local.set $c31 (f32x4.add (local.get $c31) (f32x4.mul (local.get $x) (local.get $b1))))
      (local.set $pa (i32.add (local.get $pa) (i32.const 16)))
      (local.set $pb (i32.add (local.get $pb) (i32.const 32)))
      (br_if $p (i32.lt_u (local.get $pb) (local.get $end))))
    (v128.store (local.get $c) (local.get $c00))
    (v128.store offset=16 (local.get $c) (local.get $c01))
    (v128.store (local.get $r1) (local.get $c10))
    (v128.store offset=16 (local.get $r1) (local.get $c11))
    (v128.store (local.get $r2) (local.get $c20))
    (v128.store offset=16 (local.get $r2) (local.get $c21))
    (v128.store (local.get $r3) (local.get $c30))
    (v128.store offset=16 (local.get $r3) (local.get $c31)))

  ;; An edge tile: only `rows` × `cols` of the 4×8 tile at c exist. The full tile is computed in
  ;; `tile` (scratch, 32 values) and the real part copied in and out.
  (func $edge_4x8 (param $pa i32) (param $pb i32) (param $c i32) (param $ldcb i32) (param $kc i32) (param $load i32)
                  (param $rows i32) (param $cols i32) (param $tile i32)
    (local $r i32) (local $j i32) (local $src i32) (local $dst i32)
    (if (local.get $load)
      (then
        (local.set $r (i32.const 0))
        (loop $row
          (local.set $src (i32.add (local.get $c) (i32.mul (local.get $r) (local.get $ldcb))))
          (local.set $dst (i32.add (local.get $tile) (i32.shl (local.get $r) (i32.const 5))))
          (local.set $j (i32.const 0))
          (loop $col
            (f32.store (i32.add (local.get $dst) (i32.shl (local.get $j) (i32.const 2)))
              (f32.load (i32.add (local.get $src) (i32.shl (local.get $j) (i32.const 2)))))
            (br_if $col (i32.lt_s (local.tee $j (i32.add (local.get $j) (i32.const 1))) (local.get $cols))))
          (br_if $row (i32.lt_s (local.tee $r (i32.add (local.get $r) (i32.const 1))) (local.get $rows))))))
    (call $micro_4x8 (local.get $pa) (local.get $pb) (local.get $tile) (i32.const 32) (local.get $kc) (local.get $load))
    (local.set $r (i32.const 0))
    (loop $row
      (local.set $dst (i32.add (local.get $c) (i32.mul (local.get $r) (local.get $ldcb))))
      (local.set $src (i32.add (local.get $tile) (i32.shl (local.get $r) (i32.const 5))))
      (local.set $j (i32.const 0))
      (loop $col
        (f32.store (i32.add (local.get $dst) (i32.shl (local.get $j) (i32.const 2)))
          (f32.load (i32.add (local.get $src) (i32.shl (local.get $j) (i32.const 2)))))
        (br_if $col (i32.lt_s (local.tee $j (i32.add (local.get $j) (i32.const 1))) (local.get $cols))))
      (br_if $row (i32.lt_s (local.tee $r (i32.add (local.get $r) (i32.const 1))) (local.get $rows)))))

  ;; Four vectors r0..r3 (rows) transposed: lane i of output t holds lane t of row i. Written to
  ;; dst, dst + step, dst + 2·step, dst + 3·step.
  (func $store_transposed (param $r0 v128) (param $r1 v128) (param $r2 v128) (param $r3 v128) (param $dst i32) (param $step i32)
    (local $t0 v128) (local $t1 v128) (local $t2 v128) (local $t3 v128)
    (local.set $t0 (i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23 (local.get $r0) (local.get $r1)))
    (local.set $t1 (i8x16.shuffle 8 9 10 11 24 25 26 27 12 13 14 15 28 29 30 31 (local.get $r0) (local.get $r1)))
    (local.set $t2 (i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23 (local.get $r2) (local.get $r3)))
    (local.set $t3 (i8x16.shuffle 8 9 10 11 24 25 26 27 12 13 14 15 28 29 30 31 (local.get $r2) (local.get $r3)))
    (v128.store (local.get $dst)
      (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $t0) (local.get $t2)))
    (local.set $dst (i32.add (local.get $dst) (local.get $step)))
    (v128.store (local.get $dst)
      (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $t0) (local.get $t2)))
    (local.set $dst (i32.add (local.get $dst) (local.get $step)))
    (v128.store (local.get $dst)
      (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $t1) (local.get $t3)))
    (local.set $dst (i32.add (local.get $dst) (local.get $step)))
    (v128.store (local.get $dst)
      (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $t1) (local.get $t3))))

  ;; Packs `count` lines of `kc` values into dst, `width` (4 or 8) lines interleaved per panel:
  ;; panel q holds, for s = 0..kc-1, the values of lines width·q .. width·q + width-1 at step s.
  ;; Value s of line l is at src + 4·(l·lineStride + s·stepStride). Lines past `count` are zeros.
  ;; A is packed with lines = rows of A and steps = p; B with lines = columns and steps = p.
  (func $pack (param $src i32) (param $lineStride i32) (param $stepStride i32) (param $count i32)
              (param $kc i32) (param $width i32) (param $dst i32)
    (local $l0 i32) (local $valid i32) (local $l i32) (local $s i32) (local $from i32) (local $to i32)
    (local $lineBytes i32) (local $stepBytes i32) (local $widthBytes i32) (local $kc4 i32) (local $g i32)
    (local.set $lineBytes (i32.shl (local.get $lineStride) (i32.const 2)))
    (local.set $stepBytes (i32.shl (local.get $stepStride) (i32.const 2)))
    (local.set $widthBytes (i32.shl (local.get $width) (i32.const 2)))
    (local.set $kc4 (i32.and (local.get $kc) (i32.const -4)))
    (local.set $l0 (i32.const 0))
    (block $done
      (loop $panel
        (br_if $done (i32.ge_s (local.get $l0) (local.get $count)))
        (local.set $valid (i32.sub (local.get $count) (local.get $l0)))
        (if (i32.and (i32.eq (local.get $lineStride) (i32.const 1)) (i32.ge_s (local.get $valid) (local.get $width)))
          (then
            ;; The lines of a panel are adjacent in memory: one or two vectors per step.
            (local.set $from (i32.add (local.get $src) (i32.shl (local.get $l0) (i32.const 2))))
            (local.set $to (local.get $dst))
            (local.set $s (i32.const 0))
            (loop $step
              (v128.store (local.get $to) (v128.load (local.get $from)))
              (if (i32.eq (local.get $width) (i32.const 8))
                (then (v128.store offset=16 (local.get $to) (v128.load offset=16 (local.get $from)))))
              (local.set $from (i32.add (local.get $from) (local.get $stepBytes)))
              (local.set $to (i32.add (local.get $to) (local.get $widthBytes)))
              (br_if $step (i32.lt_s (local.tee $s (i32.add (local.get $s) (i32.const 1))) (local.get $kc)))))
          (else
            (if (i32.and (i32.eq (local.get $stepStride) (i32.const 1)) (i32.ge_s (local.get $valid) (local.get $width)))
              (then
                ;; Each line is contiguous: 4×4 blocks (4 lines by 4 steps) transposed.
                (local.set $g (i32.const 0))
                (loop $group ;; lines l0 + 4g .. l0 + 4g + 3
                  (local.set $from (i32.add (local.get $src)
                    (i32.mul (i32.add (local.get $l0) (i32.shl (local.get $g) (i32.const 2))) (local.get $lineBytes))))
                  (local.set $to (i32.add (local.get $dst) (i32.shl (local.get $g) (i32.const 4))))
                  (local.set $s (i32.const 0))
                  (block $tail
                    (loop $block4
                      (br_if $tail (i32.ge_s (local.get $s) (local.get $kc4)))
                      (call $store_transposed
                        (v128.load (local.get $from))
                        (v128.load (i32.add (local.get $from) (local.get $lineBytes)))
                        (v128.load (i32.add (local.get $from) (i32.shl (local.get $lineBytes) (i32.const 1))))
                        (v128.load (i32.add (local.get $from) (i32.mul (local.get $lineBytes) (i32.const 3))))
                        (local.get $to) (local.get $widthBytes))
                      (local.set $from (i32.add (local.get $from) (i32.const 16)))
                      (local.set $to (i32.add (local.get $to) (i32.shl (local.get $widthBytes) (i32.const 2))))
                      (local.set $s (i32.add (local.get $s) (i32.const 4)))
                      (br $block4)))
                  ;; The last kc % 4 steps, value by value.
                  (block $end
                    (loop $rest
                      (br_if $end (i32.ge_s (local.get $s) (local.get $kc)))
                      (local.set $l (i32.const 0))
                      (loop $line
                        (f32.store (i32.add (local.get $to) (i32.shl (local.get $l) (i32.const 2)))
                          (f32.load (i32.add (local.get $from) (i32.mul (local.get $l) (local.get $lineBytes)))))
                        (br_if $line (i32.lt_s (local.tee $l (i32.add (local.get $l) (i32.const 1))) (i32.const 4))))
                      (local.set $from (i32.add (local.get $from) (i32.const 4)))
                      (local.set $to (i32.add (local.get $to) (local.get $widthBytes)))
                      (local.set $s (i32.add (local.get $s) (i32.const 1)))
                      (br $rest)))
                  (br_if $group (i32.lt_s (local.tee $g (i32.add (local.get $g) (i32.const 1)))
                    (i32.shr_u (local.get $width) (i32.const 2))))))
              (else
                ;; General strides or a partial panel: line by line, zeros past the last line.
                (local.set $l (i32.const 0))
                (loop $line
                  (local.set $to (i32.add (local.get $dst) (i32.shl (local.get $l) (i32.const 2))))
                  (local.set $s (i32.const 0))
                  (if (i32.lt_s (local.get $l) (local.get $valid))
                    (then
                      (local.set $from (i32.add (local.get $src)
                        (i32.mul (i32.add (local.get $l0) (local.get $l)) (local.get $lineBytes))))
                      (loop $step
                        (f32.store (local.get $to) (f32.load (local.get $from)))
                        (local.set $from (i32.add (local.get $from) (local.get $stepBytes)))
                        (local.set $to (i32.add (local.get $to) (local.get $widthBytes)))
                        (br_if $step (i32.lt_s (local.tee $s (i32.add (local.get $s) (i32.const 1))) (local.get $kc)))))
                    (else
                      (loop $step
                        (f32.store (local.get $to) (f32.const 0))
                        (local.set $to (i32.add (local.get $to) (local.get $widthBytes)))
                        (br_if $step (i32.lt_s (local.tee $s (i32.add (local.get $s) (i32.const 1))) (local.get $kc))))))
                  (br_if $line (i32.lt_s (local.tee $l (i32.add (local.get $l) (i32.const 1))) (local.get $width))))))))
        (local.set $dst (i32.add (local.get $dst) (i32.mul (local.get $kc) (local.get $widthBytes))))
        (local.set $l0 (i32.add (local.get $l0) (local.get $width)))
        (br $panel))))

  ;; `count` values from src to dst (which do not overlap).
  (func $copy_floats (param $dst i32) (param $src i32) (param $count i32)
    (local $end i32)
    (local.set $end (i32.add (local.get $dst) (i32.shl (local.get $count) (i32.const 2))))
    (block $vdone
      (loop $vec
        (br_if $vdone (i32.gt_u (i32.add (local.get $dst) (i32.const 16)) (local.get $end)))
        (v128.store (local.get $dst) (v128.load (local.get $src)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 16)))
        (local.set $src (i32.add (local.get $src) (i32.const 16)))
        (br $vec)))
    (block $done
      (loop $scalar
        (br_if $done (i32.ge_u (local.get $dst) (local.get $end)))
        (f32.store (local.get $dst) (f32.load (local.get $src)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 4)))
        (local.set $src (i32.add (local.get $src) (i32.const 4)))
        (br $scalar))))

  ;; Rows i0 .. i1-1 of C (n values each, rows ldc apart) set to 0.
  (func $zero_rows (export "zero_rows") (param $c i32) (param $ldc i32) (param $i0 i32) (param $i1 i32) (param $n i32)
    (block $done
      (loop $row
        (br_if $done (i32.ge_s (local.get $i0) (local.get $i1)))
        (call $zero_floats
          (i32.add (local.get $c) (i32.shl (i32.mul (local.get $i0) (local.get $ldc)) (i32.const 2)))
          (local.get $n))
        (local.set $i0 (i32.add (local.get $i0) (i32.const 1)))
        (br $row))))

  ;; gemm without packing, for small products: each C value's sum in the same order and the same
  ;; float32 operations as the blocked path (from C or 0, then + A(i, p)·B(p, j) for p = 0, 1, ...),
  ;; so the two give the same bits and either may be used for any size. With B's rows contiguous,
  ;; four columns at a time.
  (func $gemm_small
    (param $a i32) (param $aRow i32) (param $aCol i32)
    (param $b i32) (param $bRow i32) (param $bCol i32)
    (param $c i32) (param $ldc i32)
    (param $i0 i32) (param $i1 i32) (param $k i32) (param $n i32) (param $accumulate i32)
    (local $j i32) (local $p i32) (local $pa i32) (local $pb i32) (local $cp i32)
    (local $acc f32) (local $vacc v128) (local $aStep i32) (local $bStep i32) (local $n4 i32)
    (local.set $aStep (i32.shl (local.get $aCol) (i32.const 2)))
    (local.set $bStep (i32.shl (local.get $bRow) (i32.const 2)))
    (local.set $n4 (select (i32.and (local.get $n) (i32.const -4)) (i32.const 0) (i32.eq (local.get $bCol) (i32.const 1))))
    (block $rowsDone
      (loop $rows
        (br_if $rowsDone (i32.ge_s (local.get $i0) (local.get $i1)))
        (local.set $cp (i32.add (local.get $c) (i32.shl (i32.mul (local.get $i0) (local.get $ldc)) (i32.const 2))))
        (local.set $j (i32.const 0))
        (block $vecDone
          (loop $vec
            (br_if $vecDone (i32.ge_s (local.get $j) (local.get $n4)))
            (local.set $vacc (v128.const i32x4 0 0 0 0))
            (if (local.get $accumulate) (then (local.set $vacc (v128.load (local.get $cp)))))
            (local.set $pa (i32.add (local.get $a) (i32.shl (i32.mul (local.get $i0) (local.get $aRow)) (i32.const 2))))
            (local.set $pb (i32.add (local.get $b) (i32.shl (local.get $j) (i32.const 2))))
            (local.set $p (i32.const 0))
            (block $pDone
              (loop $ps
                (br_if $pDone (i32.ge_s (local.get $p) (local.get $k)))
                (local.set $vacc (f32x4.add (local.get $vacc)
                  (f32x4.mul (v128.load32_splat (local.get $pa)) (v128.load (local.get $pb)))))
                (local.set $pa (i32.add (local.get $pa) (local.get $aStep)))
                (local.set $pb (i32.add (local.get $pb) (local.get $bStep)))
                (local.set $p (i32.add (local.get $p) (i32.const 1)))
                (br $ps)))
            (v128.store (local.get $cp) (local.get $vacc))
            (local.set $cp (i32.add (local.get $cp) (i32.const 16)))
            (local.set $j (i32.add (local.get $j) (i32.const 4)))
            (br $vec)))
        (block $colsDone
          (loop $cols
            (br_if $colsDone (i32.ge_s (local.get $j) (local.get $n)))
            (local.set $acc (f32.const 0))
            (if (local.get $accumulate) (then (local.set $acc (f32.load (local.get $cp)))))
            (local.set $pa (i32.add (local.get $a) (i32.shl (i32.mul (local.get $i0) (local.get $aRow)) (i32.const 2))))
            (local.set $pb (i32.add (local.get $b) (i32.shl (i32.mul (local.get $j) (local.get $bCol)) (i32.const 2))))
            (local.set $p (i32.const 0))
            (block $pDone
              (loop $ps
                (br_if $pDone (i32.ge_s (local.get $p) (local.get $k)))
                (local.set $acc (f32.add (local.get $acc) (f32.mul (f32.load (local.get $pa)) (f32.load (local.get $pb)))))
                (local.set $pa (i32.add (local.get $pa) (local.get $aStep)))
                (local.set $pb (i32.add (local.get $pb) (local.get $bStep)))
                (local.set $p (i32.add (local.get $p) (i32.const 1)))
                (br $ps)))
            (f32.store (local.get $cp) (local.get $acc))
            (local.set $cp (i32.add (local.get $cp) (i32.const 4)))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $cols)))
        (local.set $i0 (i32.add (local.get $i0) (i32.const 1)))
        (br $rows))))

  (func $gemm (export "gemm")
    (param $a i32) (param $aRow i32) (param $aCol i32)
    (param $b i32) (param $bRow i32) (param $bCol i32)
    (param $c i32) (param $ldc i32)
    (param $i0 i32) (param $i1 i32) (param $k i32) (param $n i32)
    (param $accumulate i32) (param $work i32)
    (local $packA i32) (local $tile i32) (local $ldcb i32) (local $blocks i32) (local $kcMax i32)
    (local $jc i32) (local $nc i32) (local $pc i32) (local $kc i32) (local $ic i32) (local $mc i32)
    (local $jr i32) (local $ir i32) (local $load i32) (local $pa i32) (local $pb i32) (local $cp i32)
    (local $mode i32) (local $wasKept i32) (local $allA i32) (local $allB i32) (local $skipA i32) (local $skipB i32)
    (local $mc4 i32) (local $nc8 i32) (local $baseA i32) (local $baseB i32)
    ;; Whatever happens below, the work area no longer holds a kept operand unless this call keeps one.
    (local.set $mode (global.get $keepMode))
    (global.set $keepMode (i32.const 0))
    (local.set $wasKept (global.get $kept))
    (global.set $kept (i32.const 0))
    (if (i32.or (i32.ge_s (local.get $i0) (local.get $i1)) (i32.le_s (local.get $n) (i32.const 0)))
      (then (return)))
    (if (i32.le_s (local.get $k) (i32.const 0))
      (then
        (if (i32.eqz (local.get $accumulate))
          (then (call $zero_rows (local.get $c) (local.get $ldc) (local.get $i0) (local.get $i1) (local.get $n))))
        (return)))
    ;; Small products: packing would cost more than it saves (a quarter of the limit when B's rows
    ;; are not contiguous: gemm_small then reads B value by value).
    (if (i32.le_u (i32.mul (i32.mul (i32.sub (local.get $i1) (local.get $i0)) (local.get $k)) (local.get $n))
                  (i32.shr_u (global.get $SMALL_GEMM) (select (i32.const 0) (i32.const 2) (i32.eq (local.get $bCol) (i32.const 1)))))
      (then
        (call $gemm_small (local.get $a) (local.get $aRow) (local.get $aCol) (local.get $b) (local.get $bRow) (local.get $bCol)
          (local.get $c) (local.get $ldc) (local.get $i0) (local.get $i1) (local.get $k) (local.get $n) (local.get $accumulate))
        (return)))
    (local.set $ldcb (i32.shl (local.get $ldc) (i32.const 2)))
    (local.set $packA (i32.add (local.get $work) (i32.const 1048576)))
    (local.set $tile (i32.add (local.get $packA) (i32.const 524288)))
    ;; k in `blocks` nearly equal blocks of at most 256.
    (local.set $blocks (i32.div_u (i32.add (local.get $k) (i32.const 255)) (i32.const 256)))
    (local.set $kcMax (i32.div_u (i32.add (local.get $k) (i32.sub (local.get $blocks) (i32.const 1))) (local.get $blocks)))
    ;; gemm_keep: A whole (one block of rows; every inner block at pc·mc4 values in), or B whole
    ;; (one block of columns; every inner block at pc·nc8 values in), packed or already there.
    (local.set $mc4 (i32.and (i32.add (i32.sub (local.get $i1) (local.get $i0)) (i32.const 3)) (i32.const -4)))
    (local.set $nc8 (i32.and (i32.add (local.get $n) (i32.const 7)) (i32.const -8)))
    (local.set $allA (i32.and (i32.and (i32.ge_u (local.get $mode) (i32.const 1)) (i32.le_u (local.get $mode) (i32.const 2)))
      (i32.and (i32.le_s (local.get $mc4) (i32.const 64)) (i32.le_s (i32.mul (local.get $mc4) (local.get $k)) (i32.const 131072)))))
    (local.set $allB (i32.and (i32.and (i32.ge_u (local.get $mode) (i32.const 3)) (i32.le_u (local.get $mode) (i32.const 4)))
      (i32.and (i32.le_s (local.get $n) (i32.const 1024)) (i32.le_s (i32.mul (local.get $nc8) (local.get $k)) (i32.const 262144)))))
    (local.set $skipA (i32.and (local.get $allA) (i32.and (i32.eq (local.get $mode) (i32.const 2)) (i32.eq (local.get $wasKept) (i32.const 1)))))
    (local.set $skipB (i32.and (local.get $allB) (i32.and (i32.eq (local.get $mode) (i32.const 4)) (i32.eq (local.get $wasKept) (i32.const 2)))))
    (local.set $jc (i32.const 0))
    (loop $columns
      (local.set $nc (call $min (i32.const 1024) (i32.sub (local.get $n) (local.get $jc))))
      (local.set $pc (i32.const 0))
      (loop $inner
        (local.set $kc (call $min (local.get $kcMax) (i32.sub (local.get $k) (local.get $pc))))
        (local.set $load (i32.or (local.get $accumulate) (i32.ne (local.get $pc) (i32.const 0))))
        (local.set $baseB (select (i32.add (local.get $work) (i32.shl (i32.mul (local.get $pc) (local.get $nc8)) (i32.const 2)))
                                  (local.get $work) (local.get $allB)))
        (if (i32.eqz (local.get $skipB))
          (then
            (call $pack
              (i32.add (local.get $b) (i32.shl (i32.add (i32.mul (local.get $pc) (local.get $bRow))
                                                        (i32.mul (local.get $jc) (local.get $bCol))) (i32.const 2)))
              (local.get $bCol) (local.get $bRow) (local.get $nc) (local.get $kc) (i32.const 8) (local.get $baseB))))
        (local.set $ic (local.get $i0))
        (loop $rows
          (local.set $mc (call $min (i32.const 64) (i32.sub (local.get $i1) (local.get $ic))))
          (local.set $baseA (select (i32.add (local.get $packA) (i32.shl (i32.mul (local.get $pc) (local.get $mc4)) (i32.const 2)))
                                    (local.get $packA) (local.get $allA)))
          (if (i32.eqz (local.get $skipA))
            (then
              (call $pack
                (i32.add (local.get $a) (i32.shl (i32.add (i32.mul (local.get $ic) (local.get $aRow))
                                                          (i32.mul (local.get $pc) (local.get $aCol))) (i32.const 2)))
                (local.get $aRow) (local.get $aCol) (local.get $mc) (local.get $kc) (i32.const 4) (local.get $baseA))))
          (local.set $jr (i32.const 0))
          (loop $panelsB
            ;; Panel jr/8 of B starts jr·kc values in; panel ir/4 of A, ir·kc values in.
            (local.set $pb (i32.add (local.get $baseB) (i32.shl (i32.mul (local.get $jr) (local.get $kc)) (i32.const 2))))
            (local.set $ir (i32.const 0))
            (loop $panelsA
              (local.set $pa (i32.add (local.get $baseA) (i32.shl (i32.mul (local.get $ir) (local.get $kc)) (i32.const 2))))
              (local.set $cp (i32.add (local.get $c)
                (i32.add (i32.mul (i32.add (local.get $ic) (local.get $ir)) (local.get $ldcb))
                         (i32.shl (i32.add (local.get $jc) (local.get $jr)) (i32.const 2)))))
              (if (i32.and (i32.le_s (i32.add (local.get $ir) (i32.const 4)) (local.get $mc))
                           (i32.le_s (i32.add (local.get $jr) (i32.const 8)) (local.get $nc)))
                (then
                  (call $micro_4x8 (local.get $pa) (local.get $pb) (local.get $cp) (local.get $ldcb) (local.get $kc) (local.get $load)))
                (else
                  (call $edge_4x8 (local.get $pa) (local.get $pb) (local.get $cp) (local.get $ldcb) (local.get $kc) (local.get $load)
                    (call $min (i32.const 4) (i32.sub (local.get $mc) (local.get $ir)))
                    (call $min (i32.const 8) (i32.sub (local.get $nc) (local.get $jr)))
                    (local.get $tile))))
              (br_if $panelsA (i32.lt_s (local.tee $ir (i32.add (local.get $ir) (i32.const 4))) (local.get $mc))))
            (br_if $panelsB (i32.lt_s (local.tee $jr (i32.add (local.get $jr) (i32.const 8))) (local.get $nc))))
          (br_if $rows (i32.lt_s (local.tee $ic (i32.add (local.get $ic) (local.get $mc))) (local.get $i1))))
        (br_if $inner (i32.lt_s (local.tee $pc (i32.add (local.get $pc) (local.get $kc))) (local.get $k))))
      (br_if $columns (i32.lt_s (local.tee $jc (i32.add (local.get $jc) (local.get $nc))) (local.get $n))))
    (global.set $kept (select (i32.const 1) (select (i32.const 2) (i32.const 0) (local.get $allB)) (local.get $allA))))

  ;; ------------------------------------------------------------------------------------------
  ;; Matrix product by dot products, for A·Bᵀ with both operands' rows contiguous along p:
  ;;
  ;;   C(i, j) = (accumulate ? C(i, j) : 0) + Σ_p A[i·lda + p]·B[j·ldb + p]   for i0 <= i < i1, j < n
  ;;
  ;; No packing: each dot product runs over 4 lanes (lane l sums the p ≡ l mod 4 below k rounded
  ;; down to 4), then the lanes are added ((l0 + l2) + (l1 + l3)), then the last k mod 4 terms in
  ;; order, and the result is added to C once. For small outputs with a long inner dimension (a
  ;; convolution's weight gradient with few filters and a small patch), where packing would cost
  ;; more than the products. Blocks of 4 rows × 2 columns keep 8 sums in flight.
  ;; ------------------------------------------------------------------------------------------

  ;; Finishes one dot product: the sum of acc's lanes, plus a[p]·b[p] for the byte offsets p in
  ;; [from, to), into C at c.
  (func $dot_finish (param $acc v128) (param $a i32) (param $b i32) (param $from i32) (param $to i32)
                    (param $c i32) (param $accumulate i32)
    (local $s f32)
    (local.set $acc (f32x4.add (local.get $acc) (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $acc) (local.get $acc))))
    (local.set $s (f32.add (f32x4.extract_lane 0 (local.get $acc)) (f32x4.extract_lane 1 (local.get $acc))))
    (block $done
      (loop $tail
        (br_if $done (i32.ge_u (local.get $from) (local.get $to)))
        (local.set $s (f32.add (local.get $s)
          (f32.mul (f32.load (i32.add (local.get $a) (local.get $from))) (f32.load (i32.add (local.get $b) (local.get $from))))))
        (local.set $from (i32.add (local.get $from) (i32.const 4)))
        (br $tail)))
    (if (local.get $accumulate) (then (local.set $s (f32.add (f32.load (local.get $c)) (local.get $s)))))
    (f32.store (local.get $c) (local.get $s)))

  (func $dot_nt (export "dot_nt") (param $a i32) (param $lda i32) (param $b i32) (param $ldb i32) (param $c i32) (param $ldc i32)
    (param $i0 i32) (param $i1 i32) (param $k i32) (param $n i32) (param $accumulate i32)
    (local $k4 i32) (local $kb i32) (local $i i32) (local $j i32) (local $p i32)
    (local $a0 i32) (local $a1 i32) (local $a2 i32) (local $a3 i32) (local $b0 i32) (local $b1 i32)
    (local $ldab i32) (local $ldbb i32) (local $ldcb i32) (local $cp i32)
    (local $x0 v128) (local $x1 v128) (local $x2 v128) (local $x3 v128) (local $y0 v128) (local $y1 v128)
    (local $s00 v128) (local $s01 v128) (local $s10 v128) (local $s11 v128)
    (local $s20 v128) (local $s21 v128) (local $s30 v128) (local $s31 v128)
    (local.set $k4 (i32.shl (i32.and (local.get $k) (i32.const -4)) (i32.const 2)))
    (local.set $kb (i32.shl (local.get $k) (i32.const 2)))
    (local.set $ldab (i32.shl (local.get $lda) (i32.const 2)))
    (local.set $ldbb (i32.shl (local.get $ldb) (i32.const 2)))
    (local.set $ldcb (i32.shl (local.get $ldc) (i32.const 2)))
    (local.set $i (local.get $i0))
    ;; Blocks of four rows.
    (block $rowsDone
      (loop $rows
        (br_if $rowsDone (i32.gt_s (i32.add (local.get $i) (i32.const 4)) (local.get $i1)))
        (local.set $a0 (i32.add (local.get $a) (i32.mul (local.get $i) (local.get $ldab))))
        (local.set $a1 (i32.add (local.get $a0) (local.get $ldab)))
        (local.set $a2 (i32.add (local.get $a1) (local.get $ldab)))
        (local.set $a3 (i32.add (local.get $a2) (local.get $ldab)))
        (local.set $cp (i32.add (local.get $c) (i32.mul (local.get $i) (local.get $ldcb))))
        (local.set $j (i32.const 0))
        (block $pairsDone
          (loop $pairs
            (br_if $pairsDone (i32.gt_s (i32.add (local.get $j) (i32.const 2)) (local.get $n)))
            (local.set $b0 (i32.add (local.get $b) (i32.mul (local.get $j) (local.get $ldbb))))
            (local.set $b1 (i32.add (local.get $b0) (local.get $ldbb)))
            (local.set $s00 (v128.const i32x4 0 0 0 0)) (local.set $s01 (v128.const i32x4 0 0 0 0))
            (local.set $s10 (v128.const i32x4 0 0 0 0)) (local.set $s11 (v128.const i32x4 0 0 0 0))
            (local.set $s20 (v128.const i32x4 0 0 0 0)) (local.set $s21 (v128.const i32x4 0 0 0 0))
            (local.set $s30 (v128.const i32x4 0 0 0 0)) (local.set $s31 (v128.const i32x4 0 0 0 0))
            (local.set $p (i32.const 0))
            (block $pDone
              (loop $ps
                (br_if $pDone (i32.ge_u (local.get $p) (local.get $k4)))
                (local.set $y0 (v128.load (i32.add (local.get $b0) (local.get $p))))
                (local.set $y1 (v128.load (i32.add (local.get $b1) (local.get $p))))
                (local.set $x0 (v128.load (i32.add (local.get $a0) (local.get $p))))
                (local.set $s00 (f32x4.add (local.get $s00) (f32x4.mul (local.get $x0) (local.get $y0))))
                (local.set $s01 (f32x4.add (local.get $s01) (f32x4.mul (local.get $x0) (local.get $y1))))
                (local.set $x1 (v128.load (i32.add (local.get $a1) (local.get $p))))
                (local.set $s10 (f32x4.add (local.get $s10) (f32x4.mul (local.get $x1) (local.get $y0))))
                (local.set $s11 (f32x4.add (local.get $s11) (f32x4.mul (local.get $x1) (local.get $y1))))
                (local.set $x2 (v128.load (i32.add (local.get $a2) (local.get $p))))
                (local.set $s20 (f32x4.add (local.get $s20) (f32x4.mul (local.get $x2) (local.get $y0))))
                (local.set $s21 (f32x4.add (local.get $s21) (f32x4.mul (local.get $x2) (local.get $y1))))
                (local.set $x3 (v128.load (i32.add (local.get $a3) (local.get $p))))
                (local.set $s30 (f32x4.add (local.get $s30) (f32x4.mul (local.get $x3) (local.get $y0))))
                (local.set $s31 (f32x4.add (local.get $s31) (f32x4.mul (local.get $x3) (local.get $y1))))
                (local.set $p (i32.add (local.get $p) (i32.const 16)))
                (br $ps)))
            (call $dot_finish (local.get $s00) (local.get $a0) (local.get $b0) (local.get $k4) (local.get $kb)
              (i32.add (local.get $cp) (i32.shl (local.get $j) (i32.const 2))) (local.get $accumulate))
            (call $dot_finish (local.get $s01) (local.get $a0) (local.get $b1) (local.get $k4) (local.get $kb)
              (i32.add (local.get $cp) (i32.shl (i32.add (local.get $j) (i32.const 1)) (i32.const 2))) (local.get $accumulate))
            (call $dot_finish (local.get $s10) (local.get $a1) (local.get $b0) (local.get $k4) (local.get $kb)
              (i32.add (i32.add (local.get $cp) (local.get $ldcb)) (i32.shl (local.get $j) (i32.const 2))) (local.get $accumulate))
            (call $dot_finish (local.get $s11) (local.get $a1) (local.get $b1) (local.get $k4) (local.get $kb)
              (i32.add (i32.add (local.get $cp) (local.get $ldcb)) (i32.shl (i32.add (local.get $j) (i32.const 1)) (i32.const 2))) (local.get $accumulate))
            (call $dot_finish (local.get $s20) (local.get $a2) (local.get $b0) (local.get $k4) (local.get $kb)
              (i32.add (i32.add (local.get $cp) (i32.shl (local.get $ldcb) (i32.const 1))) (i32.shl (local.get $j) (i32.const 2))) (local.get $accumulate))
            (call $dot_finish (local.get $s21) (local.get $a2) (local.get $b1) (local.get $k4) (local.get $kb)
              (i32.add (i32.add (local.get $cp) (i32.shl (local.get $ldcb) (i32.const 1))) (i32.shl (i32.add (local.get $j) (i32.const 1)) (i32.const 2))) (local.get $accumulate))
            (call $dot_finish (local.get $s30) (local.get $a3) (local.get $b0) (local.get $k4) (local.get $kb)
              (i32.add (i32.add (local.get $cp) (i32.mul (local.get $ldcb) (i32.const 3))) (i32.shl (local.get $j) (i32.const 2))) (local.get $accumulate))
            (call $dot_finish (local.get $s31) (local.get $a3) (local.get $b1) (local.get $k4) (local.get $kb)
              (i32.add (i32.add (local.get $cp) (i32.mul (local.get $ldcb) (i32.const 3))) (i32.shl (i32.add (local.get $j) (i32.const 1)) (i32.const 2))) (local.get $accumulate))
            (local.set $j (i32.add (local.get $j) (i32.const 2)))
            (br $pairs)))
        ;; An odd last column: four rows by one.
        (if (i32.lt_s (local.get $j) (local.get $n))
          (then
            (local.set $b0 (i32.add (local.get $b) (i32.mul (local.get $j) (local.get $ldbb))))
            (local.set $s00 (v128.const i32x4 0 0 0 0)) (local.set $s10 (v128.const i32x4 0 0 0 0))
            (local.set $s20 (v128.const i32x4 0 0 0 0)) (local.set $s30 (v128.const i32x4 0 0 0 0))
            (local.set $p (i32.const 0))
            (block $pDone
              (loop $ps
                (br_if $pDone (i32.ge_u (local.get $p) (local.get $k4)))
                (local.set $y0 (v128.load (i32.add (local.get $b0) (local.get $p))))
                (local.set $s00 (f32x4.add (local.get $s00) (f32x4.mul (v128.load (i32.add (local.get $a0) (local.get $p))) (local.get $y0))))
                (local.set $s10 (f32x4.add (local.get $s10) (f32x4.mul (v128.load (i32.add (local.get $a1) (local.get $p))) (local.get $y0))))
                (local.set $s20 (f32x4.add (local.get $s20) (f32x4.mul (v128.load (i32.add (local.get $a2) (local.get $p))) (local.get $y0))))
                (local.set $s30 (f32x4.add (local.get $s30) (f32x4.mul (v128.load (i32.add (local.get $a3) (local.get $p))) (local.get $y0))))
                (local.set $p (i32.add (local.get $p) (i32.const 16)))
                (br $ps)))
            (local.set $cp (i32.add (local.get $cp) (i32.shl (local.get $j) (i32.const 2))))
            (call $dot_finish (local.get $s00) (local.get $a0) (local.get $b0) (local.get $k4) (local.get $kb) (local.get $cp) (local.get $accumulate))
            (local.set $cp (i32.add (local.get $cp) (local.get $ldcb)))
            (call $dot_finish (local.get $s10) (local.get $a1) (local.get $b0) (local.get $k4) (local.get $kb) (local.get $cp) (local.get $accumulate))
            (local.set $cp (i32.add (local.get $cp) (local.get $ldcb)))
            (call $dot_finish (local.get $s20) (local.get $a2) (local.get $b0) (local.get $k4) (local.get $kb) (local.get $cp) (local.get $accumulate))
            (local.set $cp (i32.add (local.get $cp) (local.get $ldcb)))
            (call $dot_finish (local.get $s30) (local.get $a3) (local.get $b0) (local.get $k4) (local.get $kb) (local.get $cp) (local.get $accumulate))))
        (local.set $i (i32.add (local.get $i) (i32.const 4)))
        (br $rows)))
    ;; The last i1 - i rows (fewer than four), one dot product at a time.
    (block $restDone
      (loop $rest
        (br_if $restDone (i32.ge_s (local.get $i) (local.get $i1)))
        (local.set $a0 (i32.add (local.get $a) (i32.mul (local.get $i) (local.get $ldab))))
        (local.set $j (i32.const 0))
        (block $colsDone
          (loop $cols
            (br_if $colsDone (i32.ge_s (local.get $j) (local.get $n)))
            (local.set $b0 (i32.add (local.get $b) (i32.mul (local.get $j) (local.get $ldbb))))
            (local.set $s00 (v128.const i32x4 0 0 0 0))
            (local.set $p (i32.const 0))
            (block $pDone
              (loop $ps
                (br_if $pDone (i32.ge_u (local.get $p) (local.get $k4)))
                (local.set $s00 (f32x4.add (local.get $s00)
                  (f32x4.mul (v128.load (i32.add (local.get $a0) (local.get $p))) (v128.load (i32.add (local.get $b0) (local.get $p))))))
                (local.set $p (i32.add (local.get $p) (i32.const 16)))
                (br $ps)))
            (call $dot_finish (local.get $s00) (local.get $a0) (local.get $b0) (local.get $k4) (local.get $kb)
              (i32.add (local.get $c) (i32.add (i32.mul (local.get $i) (local.get $ldcb)) (i32.shl (local.get $j) (i32.const 2))))
              (local.get $accumulate))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $cols)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $rest))))

  ;; Rows i0 .. i1-1 of C (n values each, rows ldc apart) set to the n values at `values`: the bias
  ;; a dense layer adds to every row.
  (func $copy_rows (export "copy_rows") (param $c i32) (param $ldc i32) (param $i0 i32) (param $i1 i32) (param $n i32) (param $values i32)
    (block $done
      (loop $row
        (br_if $done (i32.ge_s (local.get $i0) (local.get $i1)))
        (call $copy_floats
          (i32.add (local.get $c) (i32.shl (i32.mul (local.get $i0) (local.get $ldc)) (i32.const 2)))
          (local.get $values)
          (local.get $n))
        (local.set $i0 (i32.add (local.get $i0) (i32.const 1)))
        (br $row))))

  ;; Row i of C (n values, rows ldc apart), for i0 <= i < i1, set to the one value values[i]: the bias
  ;; a convolution adds to each filter's output plane.
  (func $fill_rows (export "fill_rows") (param $c i32) (param $ldc i32) (param $i0 i32) (param $i1 i32) (param $n i32) (param $values i32)
    (local $v v128) (local $p i32) (local $end i32) (local $end4 i32)
    (block $done
      (loop $row
        (br_if $done (i32.ge_s (local.get $i0) (local.get $i1)))
        (local.set $v (v128.load32_splat (i32.add (local.get $values) (i32.shl (local.get $i0) (i32.const 2)))))
        (local.set $p (i32.add (local.get $c) (i32.shl (i32.mul (local.get $i0) (local.get $ldc)) (i32.const 2))))
        (local.set $end (i32.add (local.get $p) (i32.shl (local.get $n) (i32.const 2))))
        (local.set $end4 (i32.add (local.get $p) (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2))))
        (block $vdone
          (loop $vec
            (br_if $vdone (i32.ge_u (local.get $p) (local.get $end4)))
            (v128.store (local.get $p) (local.get $v))
            (local.set $p (i32.add (local.get $p) (i32.const 16)))
            (br $vec)))
        (block $sdone
          (loop $scalar
            (br_if $sdone (i32.ge_u (local.get $p) (local.get $end)))
            (f32.store (local.get $p) (f32x4.extract_lane 0 (local.get $v)))
            (local.set $p (i32.add (local.get $p) (i32.const 4)))
            (br $scalar)))
        (local.set $i0 (i32.add (local.get $i0) (i32.const 1)))
        (br $row))))

  ;; out[j] = Σ_i a[i·n + j] over rows i = 0..m-1, for columns j0 <= j < j1, added row by row in
  ;; float32 from 0 (as the JS kernel does on float32 arrays: the same values, bit for bit).
  (func $sum_rows (export "sum_rows") (param $a i32) (param $out i32) (param $m i32) (param $n i32) (param $j0 i32) (param $j1 i32)
    (local $s0 v128) (local $s1 v128) (local $s2 v128) (local $s3 v128) (local $s f32)
    (local $p i32) (local $i i32) (local $rowBytes i32) (local $j i32)
    (local.set $rowBytes (i32.shl (local.get $n) (i32.const 2)))
    (local.set $j (local.get $j0))
    ;; 16 columns at a time, four sums in flight.
    (block $done16
      (loop $cols16
        (br_if $done16 (i32.gt_s (i32.add (local.get $j) (i32.const 16)) (local.get $j1)))
        (local.set $s0 (v128.const i32x4 0 0 0 0))
        (local.set $s1 (v128.const i32x4 0 0 0 0))
        (local.set $s2 (v128.const i32x4 0 0 0 0))
        (local.set $s3 (v128.const i32x4 0 0 0 0))
        (local.set $p (i32.add (local.get $a) (i32.shl (local.get $j) (i32.const 2))))
        (local.set $i (i32.const 0))
        (block $rdone
          (loop $rows
            (br_if $rdone (i32.ge_s (local.get $i) (local.get $m)))
            (local.set $s0 (f32x4.add (local.get $s0) (v128.load (local.get $p))))
            (local.set $s1 (f32x4.add (local.get $s1) (v128.load offset=16 (local.get $p))))
            (local.set $s2 (f32x4.add (local.get $s2) (v128.load offset=32 (local.get $p))))
            (local.set $s3 (f32x4.add (local.get $s3) (v128.load offset=48 (local.get $p))))
            (local.set $p (i32.add (local.get $p) (local.get $rowBytes)))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br $rows)))
        (local.set $p (i32.add (local.get $out) (i32.shl (local.get $j) (i32.const 2))))
        (v128.store (local.get $p) (local.get $s0))
        (v128.store offset=16 (local.get $p) (local.get $s1))
        (v128.store offset=32 (local.get $p) (local.get $s2))
        (v128.store offset=48 (local.get $p) (local.get $s3))
        (local.set $j (i32.add (local.get $j) (i32.const 16)))
        (br $cols16)))
    (block $done4
      (loop $cols4
        (br_if $done4 (i32.gt_s (i32.add (local.get $j) (i32.const 4)) (local.get $j1)))
        (local.set $s0 (v128.const i32x4 0 0 0 0))
        (local.set $p (i32.add (local.get $a) (i32.shl (local.get $j) (i32.const 2))))
        (local.set $i (i32.const 0))
        (block $rdone
          (loop $rows
            (br_if $rdone (i32.ge_s (local.get $i) (local.get $m)))
            (local.set $s0 (f32x4.add (local.get $s0) (v128.load (local.get $p))))
            (local.set $p (i32.add (local.get $p) (local.get $rowBytes)))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br $rows)))
        (v128.store (i32.add (local.get $out) (i32.shl (local.get $j) (i32.const 2))) (local.get $s0))
        (local.set $j (i32.add (local.get $j) (i32.const 4)))
        (br $cols4)))
    (block $done1
      (loop $cols1
        (br_if $done1 (i32.ge_s (local.get $j) (local.get $j1)))
        (local.set $s (f32.const 0))
        (local.set $p (i32.add (local.get $a) (i32.shl (local.get $j) (i32.const 2))))
        (local.set $i (i32.const 0))
        (block $rdone
          (loop $rows
            (br_if $rdone (i32.ge_s (local.get $i) (local.get $m)))
            (local.set $s (f32.add (local.get $s) (f32.load (local.get $p))))
            (local.set $p (i32.add (local.get $p) (local.get $rowBytes)))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br $rows)))
        (f32.store (i32.add (local.get $out) (i32.shl (local.get $j) (i32.const 2))) (local.get $s))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br $cols1))))

  ;; ------------------------------------------------------------------------------------------
  ;; Activations, in place on `count` values. Each gives the JS kernel's float32 result bit for
  ;; bit: where the JS expression takes several steps in double precision, so does this code
  ;; (f64x2), rounding to float32 once at the end.
  ;; ------------------------------------------------------------------------------------------

  ;; x = (x + |x|)·0.5 as the JS kernel: max(x, 0), except that NaN stays NaN and -Infinity gives
  ;; NaN. Positive values are kept as they are (in float32, x + x would overflow above 2^127).
  (func $relu (export "relu") (param $x i32) (param $count i32)
    (local $end i32) (local $end4 i32) (local $v v128) (local $s f32)
    (local.set $end (i32.add (local.get $x) (i32.shl (local.get $count) (i32.const 2))))
    (local.set $end4 (i32.add (local.get $x) (i32.shl (i32.and (local.get $count) (i32.const -4)) (i32.const 2))))
    (block $done
      (loop $vec
        (br_if $done (i32.ge_u (local.get $x) (local.get $end4)))
        (local.set $v (v128.load (local.get $x)))
        (v128.store (local.get $x)
          (v128.bitselect
            (local.get $v)
            (f32x4.mul (f32x4.add (local.get $v) (f32x4.abs (local.get $v))) (v128.const f32x4 0.5 0.5 0.5 0.5))
            (f32x4.gt (local.get $v) (v128.const i32x4 0 0 0 0))))
        (local.set $x (i32.add (local.get $x) (i32.const 16)))
        (br $vec)))
    (block $done
      (loop $scalar
        (br_if $done (i32.ge_u (local.get $x) (local.get $end)))
        (local.set $s (f32.load (local.get $x)))
        (f32.store (local.get $x)
          (select (local.get $s)
            (f32.mul (f32.add (local.get $s) (f32.abs (local.get $s))) (f32.const 0.5))
            (f32.gt (local.get $s) (f32.const 0))))
        (local.set $x (i32.add (local.get $x) (i32.const 4)))
        (br $scalar))))

  ;; relu on `n` values of each of rows [i0, i1) of the matrix at c, `ld` values a row (a block of
  ;; columns of a product's output: the columns a thread computed).
  (func $relu_rows (export "relu_rows") (param $c i32) (param $ld i32) (param $i0 i32) (param $i1 i32) (param $n i32)
    (block $done
      (loop $rows
        (br_if $done (i32.ge_s (local.get $i0) (local.get $i1)))
        (call $relu (i32.add (local.get $c) (i32.shl (i32.mul (local.get $i0) (local.get $ld)) (i32.const 2))) (local.get $n))
        (local.set $i0 (i32.add (local.get $i0) (i32.const 1)))
        (br $rows))))

  ;; relu_backward on `n` values of each of rows [i0, i1) of y and g, both `ld` values a row.
  (func $relu_backward_rows (export "relu_backward_rows") (param $y i32) (param $g i32) (param $ld i32) (param $i0 i32) (param $i1 i32) (param $n i32)
    (local $off i32)
    (block $done
      (loop $rows
        (br_if $done (i32.ge_s (local.get $i0) (local.get $i1)))
        (local.set $off (i32.shl (i32.mul (local.get $i0) (local.get $ld)) (i32.const 2)))
        (call $relu_backward (i32.add (local.get $y) (local.get $off)) (i32.add (local.get $g) (local.get $off)) (local.get $n))
        (local.set $i0 (i32.add (local.get $i0) (i32.const 1)))
        (br $rows))))

  ;; grad = grad·(y > 0 ? 1 : 0).
  (func $relu_backward (export "relu_backward") (param $y i32) (param $g i32) (param $count i32)
    (local $end i32) (local $end4 i32)
    (local.set $end (i32.add (local.get $g) (i32.shl (local.get $count) (i32.const 2))))
    (local.set $end4 (i32.add (local.get $g) (i32.shl (i32.and (local.get $count) (i32.const -4)) (i32.const 2))))
    (block $done
      (loop $vec
        (br_if $done (i32.ge_u (local.get $g) (local.get $end4)))
        (v128.store (local.get $g)
          (f32x4.mul (v128.load (local.get $g))
            (v128.and (f32x4.gt (v128.load (local.get $y)) (v128.const i32x4 0 0 0 0))
                      (v128.const f32x4 1 1 1 1))))
        (local.set $g (i32.add (local.get $g) (i32.const 16)))
        (local.set $y (i32.add (local.get $y) (i32.const 16)))
        (br $vec)))
    (block $done
      (loop $scalar
        (br_if $done (i32.ge_u (local.get $g) (local.get $end)))
        (f32.store (local.get $g)
          (f32.mul (f32.load (local.get $g))
            (f32.convert_i32_u (f32.gt (f32.load (local.get $y)) (f32.const 0)))))
        (local.set $g (i32.add (local.get $g) (i32.const 4)))
        (local.set $y (i32.add (local.get $y) (i32.const 4)))
        (br $scalar))))

  ;; grad = grad·(1 - y·y) (tanh) or grad·(y·(1 - y)) (sigmoid), in double precision, two values at
  ;; a time.
  (func $tanh_backward (export "tanh_backward") (param $y i32) (param $g i32) (param $count i32)
    (local $end i32) (local $end2 i32) (local $yv v128) (local $ys f64)
    (local.set $end (i32.add (local.get $g) (i32.shl (local.get $count) (i32.const 2))))
    (local.set $end2 (i32.add (local.get $g) (i32.shl (i32.and (local.get $count) (i32.const -2)) (i32.const 2))))
    (block $done
      (loop $vec
        (br_if $done (i32.ge_u (local.get $g) (local.get $end2)))
        (local.set $yv (f64x2.promote_low_f32x4 (v128.load64_zero (local.get $y))))
        (v128.store64_lane 0 (local.get $g)
          (f32x4.demote_f64x2_zero
            (f64x2.mul (f64x2.promote_low_f32x4 (v128.load64_zero (local.get $g)))
              (f64x2.sub (v128.const f64x2 1 1) (f64x2.mul (local.get $yv) (local.get $yv))))))
        (local.set $g (i32.add (local.get $g) (i32.const 8)))
        (local.set $y (i32.add (local.get $y) (i32.const 8)))
        (br $vec)))
    (if (i32.lt_u (local.get $g) (local.get $end))
      (then
        (local.set $ys (f64.promote_f32 (f32.load (local.get $y))))
        (f32.store (local.get $g)
          (f32.demote_f64 (f64.mul (f64.promote_f32 (f32.load (local.get $g)))
            (f64.sub (f64.const 1) (f64.mul (local.get $ys) (local.get $ys)))))))))

  (func $sigmoid_backward (export "sigmoid_backward") (param $y i32) (param $g i32) (param $count i32)
    (local $end i32) (local $end2 i32) (local $yv v128) (local $ys f64)
    (local.set $end (i32.add (local.get $g) (i32.shl (local.get $count) (i32.const 2))))
    (local.set $end2 (i32.add (local.get $g) (i32.shl (i32.and (local.get $count) (i32.const -2)) (i32.const 2))))
    (block $done
      (loop $vec
        (br_if $done (i32.ge_u (local.get $g) (local.get $end2)))
        (local.set $yv (f64x2.promote_low_f32x4 (v128.load64_zero (local.get $y))))
        (v128.store64_lane 0 (local.get $g)
          (f32x4.demote_f64x2_zero
            (f64x2.mul (f64x2.promote_low_f32x4 (v128.load64_zero (local.get $g)))
              (f64x2.mul (local.get $yv) (f64x2.sub (v128.const f64x2 1 1) (local.get $yv))))))
        (local.set $g (i32.add (local.get $g) (i32.const 8)))
        (local.set $y (i32.add (local.get $y) (i32.const 8)))
        (br $vec)))
    (if (i32.lt_u (local.get $g) (local.get $end))
      (then
        (local.set $ys (f64.promote_f32 (f32.load (local.get $y))))
        (f32.store (local.get $g)
          (f32.demote_f64 (f64.mul (f64.promote_f32 (f32.load (local.get $g)))
            (f64.mul (local.get $ys) (f64.sub (f64.const 1) (local.get $ys)))))))))

  ;; ------------------------------------------------------------------------------------------
  ;; im2col and its adjoint col2im of the Kernels interface: the same loops and layout as the JS
  ;; kernels (patch-major: row q = oy·outWidth + ox of a [positions, K] matrix holds window q's K
  ;; values, K = channels·kernelH·kernelW, zeros for padding). The convolution itself uses the
  ;; transposed layout further down.
  ;; ------------------------------------------------------------------------------------------

  ;; a / stride for a >= 0, without the division (slow) when stride is 1.
  (func $over (param $a i32) (param $stride i32) (result i32)
    (if (result i32) (i32.eq (local.get $stride) (i32.const 1))
      (then (local.get $a))
      (else (i32.div_u (local.get $a) (local.get $stride)))))

  ;; The first window position o (x0 + o·stride) at or after 0, at most count.
  (func $first_inside (param $x0 i32) (param $stride i32) (param $count i32) (result i32)
    (if (result i32) (i32.ge_s (local.get $x0) (i32.const 0))
      (then (i32.const 0))
      (else (call $min (local.get $count)
        (call $over (i32.sub (i32.add (i32.sub (i32.const 0) (local.get $x0)) (local.get $stride)) (i32.const 1))
                    (local.get $stride))))))

  ;; One past the last window position before `size`, never below `first`.
  (func $end_inside (param $x0 i32) (param $stride i32) (param $size i32) (param $count i32) (param $first i32) (result i32)
    (local $e i32)
    (if (result i32) (i32.ge_s (local.get $x0) (local.get $size))
      (then (local.get $first))
      (else
        (local.set $e (call $min (local.get $count)
          (i32.add (call $over (i32.sub (i32.sub (local.get $size) (i32.const 1)) (local.get $x0)) (local.get $stride))
                   (i32.const 1))))
        (select (local.get $first) (local.get $e) (i32.gt_s (local.get $first) (local.get $e))))))

  ;; Patches of the image at `input` ([channels, height, width]) into `col`; or, with `adjoint`,
  ;; col2im: each patch value added into the image position it was read from (padding dropped).
  (func $patches (param $input i32) (param $col i32)
    (param $channels i32) (param $height i32) (param $width i32) (param $kernelH i32) (param $kernelW i32)
    (param $strideH i32) (param $strideW i32) (param $padTop i32) (param $padLeft i32)
    (param $outHeight i32) (param $outWidth i32) (param $adjoint i32)
    (local $patchBytes i32) (local $rowStep i32) (local $planeBytes i32) (local $sxBytes i32)
    (local $c i32) (local $ki i32) (local $kj i32) (local $q i32) (local $plane i32)
    (local $x0 i32) (local $first i32) (local $end i32) (local $oy i32) (local $iy i32) (local $ox i32)
    (local $dst i32) (local $src i32)
    (local.set $patchBytes (i32.shl (i32.mul (local.get $channels) (i32.mul (local.get $kernelH) (local.get $kernelW))) (i32.const 2)))
    (local.set $rowStep (i32.mul (local.get $outWidth) (local.get $patchBytes)))
    (local.set $planeBytes (i32.shl (i32.mul (local.get $height) (local.get $width)) (i32.const 2)))
    (local.set $sxBytes (i32.shl (local.get $strideW) (i32.const 2)))
    (local.set $q (i32.const 0))
    (local.set $c (i32.const 0))
    (loop $channel
      (local.set $plane (i32.add (local.get $input) (i32.mul (local.get $c) (local.get $planeBytes))))
      (local.set $ki (i32.const 0))
      (loop $kernelRow
        (local.set $kj (i32.const 0))
        (loop $kernelCol
          (local.set $x0 (i32.sub (local.get $kj) (local.get $padLeft)))
          (local.set $first (call $first_inside (local.get $x0) (local.get $strideW) (local.get $outWidth)))
          (local.set $end (call $end_inside (local.get $x0) (local.get $strideW) (local.get $width) (local.get $outWidth) (local.get $first)))
          (local.set $oy (i32.const 0))
          (loop $outRow
            ;; dst: value q of patch (oy, 0); src: input (iy, x0).
            (local.set $dst (i32.add (local.get $col)
              (i32.add (i32.mul (local.get $oy) (local.get $rowStep)) (i32.shl (local.get $q) (i32.const 2)))))
            (local.set $iy (i32.sub (i32.add (i32.mul (local.get $oy) (local.get $strideH)) (local.get $ki)) (local.get $padTop)))
            (if (i32.or (i32.lt_s (local.get $iy) (i32.const 0)) (i32.ge_s (local.get $iy) (local.get $height)))
              (then
                (if (i32.eqz (local.get $adjoint))
                  (then
                    (local.set $ox (i32.const 0))
                    (loop $zeros
                      (f32.store (local.get $dst) (f32.const 0))
                      (local.set $dst (i32.add (local.get $dst) (local.get $patchBytes)))
                      (br_if $zeros (i32.lt_s (local.tee $ox (i32.add (local.get $ox) (i32.const 1))) (local.get $outWidth)))))))
              (else
                (local.set $src (i32.add (local.get $plane)
                  (i32.shl (i32.add (i32.mul (local.get $iy) (local.get $width)) (local.get $x0)) (i32.const 2))))
                (local.set $ox (i32.const 0))
                (if (local.get $adjoint)
                  (then
                    (local.set $ox (local.get $first))
                    (local.set $dst (i32.add (local.get $dst) (i32.mul (local.get $first) (local.get $patchBytes))))
                    (local.set $src (i32.add (local.get $src) (i32.mul (local.get $first) (local.get $sxBytes))))
                    (block $done
                      (loop $inside
                        (br_if $done (i32.ge_s (local.get $ox) (local.get $end)))
                        (f32.store (local.get $src) (f32.add (f32.load (local.get $src)) (f32.load (local.get $dst))))
                        (local.set $dst (i32.add (local.get $dst) (local.get $patchBytes)))
                        (local.set $src (i32.add (local.get $src) (local.get $sxBytes)))
                        (local.set $ox (i32.add (local.get $ox) (i32.const 1)))
                        (br $inside))))
                  (else
                    (block $done
                      (loop $before
                        (br_if $done (i32.ge_s (local.get $ox) (local.get $first)))
                        (f32.store (local.get $dst) (f32.const 0))
                        (local.set $dst (i32.add (local.get $dst) (local.get $patchBytes)))
                        (local.set $ox (i32.add (local.get $ox) (i32.const 1)))
                        (br $before)))
                    (local.set $src (i32.add (local.get $src) (i32.mul (local.get $first) (local.get $sxBytes))))
                    (block $done
                      (loop $inside
                        (br_if $done (i32.ge_s (local.get $ox) (local.get $end)))
                        (f32.store (local.get $dst) (f32.load (local.get $src)))
                        (local.set $dst (i32.add (local.get $dst) (local.get $patchBytes)))
                        (local.set $src (i32.add (local.get $src) (local.get $sxBytes)))
                        (local.set $ox (i32.add (local.get $ox) (i32.const 1)))
                        (br $inside)))
                    (block $done
                      (loop $after
                        (br_if $done (i32.ge_s (local.get $ox) (local.get $outWidth)))
                        (f32.store (local.get $dst) (f32.const 0))
                        (local.set $dst (i32.add (local.get $dst) (local.get $patchBytes)))
                        (local.set $ox (i32.add (local.get $ox) (i32.const 1)))
                        (br $after)))))))
            (br_if $outRow (i32.lt_s (local.tee $oy (i32.add (local.get $oy) (i32.const 1))) (local.get $outHeight))))
          (local.set $q (i32.add (local.get $q) (i32.const 1)))
          (br_if $kernelCol (i32.lt_s (local.tee $kj (i32.add (local.get $kj) (i32.const 1))) (local.get $kernelW))))
        (br_if $kernelRow (i32.lt_s (local.tee $ki (i32.add (local.get $ki) (i32.const 1))) (local.get $kernelH))))
      (br_if $channel (i32.lt_s (local.tee $c (i32.add (local.get $c) (i32.const 1))) (local.get $channels)))))

  (func $im2col (export "im2col") (param $input i32) (param $col i32)
    (param $channels i32) (param $height i32) (param $width i32) (param $kernelH i32) (param $kernelW i32)
    (param $strideH i32) (param $strideW i32) (param $padTop i32) (param $padLeft i32)
    (param $outHeight i32) (param $outWidth i32)
    (call $patches (local.get $input) (local.get $col) (local.get $channels) (local.get $height) (local.get $width)
      (local.get $kernelH) (local.get $kernelW) (local.get $strideH) (local.get $strideW)
      (local.get $padTop) (local.get $padLeft) (local.get $outHeight) (local.get $outWidth) (i32.const 0)))

  ;; Adds the patch matrix at `col` into the image gradient at `inputGrad` (which the caller zeroes
  ;; first when it wants col2im alone).
  (func $col2im (export "col2im") (param $col i32) (param $inputGrad i32)
    (param $channels i32) (param $height i32) (param $width i32) (param $kernelH i32) (param $kernelW i32)
    (param $strideH i32) (param $strideW i32) (param $padTop i32) (param $padLeft i32)
    (param $outHeight i32) (param $outWidth i32)
    (call $patches (local.get $inputGrad) (local.get $col) (local.get $channels) (local.get $height) (local.get $width)
      (local.get $kernelH) (local.get $kernelW) (local.get $strideH) (local.get $strideW)
      (local.get $padTop) (local.get $padLeft) (local.get $outHeight) (local.get $outWidth) (i32.const 1)))

;; ------------------------------------------------------------------------------------------
  ;; The WebAssembly convolution (driven from wasm-kernels.ts): patches kept transposed,
  ;; [K, positions] per sample, and the bias gradient.
  ;; ------------------------------------------------------------------------------------------

  ;; out[r] += Σ_j a[r·n + j] for rows r0 <= r < r1 (a convolution's bias gradient, filter by
  ;; filter). Each row is summed in double precision, in four pairs of lanes (values j ≡ 0..7 mod 8)
  ;; combined in a fixed order, then added to out[r] once.
  (func $add_row_sums (export "add_row_sums") (param $a i32) (param $out i32) (param $n i32) (param $r0 i32) (param $r1 i32)
    (local $p i32) (local $end i32) (local $end8 i32) (local $sum f64) (local $at i32) (local $v v128)
    (local $s0 v128) (local $s1 v128) (local $s2 v128) (local $s3 v128)
    (block $done
      (loop $row
        (br_if $done (i32.ge_s (local.get $r0) (local.get $r1)))
        (local.set $p (i32.add (local.get $a) (i32.shl (i32.mul (local.get $r0) (local.get $n)) (i32.const 2))))
        (local.set $end (i32.add (local.get $p) (i32.shl (local.get $n) (i32.const 2))))
        (local.set $end8 (i32.add (local.get $p) (i32.shl (i32.and (local.get $n) (i32.const -8)) (i32.const 2))))
        (local.set $s0 (v128.const i32x4 0 0 0 0))
        (local.set $s1 (v128.const i32x4 0 0 0 0))
        (local.set $s2 (v128.const i32x4 0 0 0 0))
        (local.set $s3 (v128.const i32x4 0 0 0 0))
        (block $vdone
          (loop $vec
            (br_if $vdone (i32.ge_u (local.get $p) (local.get $end8)))
            (local.set $v (v128.load (local.get $p)))
            (local.set $s0 (f64x2.add (local.get $s0) (f64x2.promote_low_f32x4 (local.get $v))))
            (local.set $s1 (f64x2.add (local.get $s1) (f64x2.promote_low_f32x4
              (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $v) (local.get $v)))))
            (local.set $v (v128.load offset=16 (local.get $p)))
            (local.set $s2 (f64x2.add (local.get $s2) (f64x2.promote_low_f32x4 (local.get $v))))
            (local.set $s3 (f64x2.add (local.get $s3) (f64x2.promote_low_f32x4
              (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $v) (local.get $v)))))
            (local.set $p (i32.add (local.get $p) (i32.const 32)))
            (br $vec)))
        (local.set $s0 (f64x2.add (f64x2.add (local.get $s0) (local.get $s1)) (f64x2.add (local.get $s2) (local.get $s3))))
        (local.set $sum (f64.add (f64x2.extract_lane 0 (local.get $s0)) (f64x2.extract_lane 1 (local.get $s0))))
        (block $sdone
          (loop $value
            (br_if $sdone (i32.ge_u (local.get $p) (local.get $end)))
            (local.set $sum (f64.add (local.get $sum) (f64.promote_f32 (f32.load (local.get $p)))))
            (local.set $p (i32.add (local.get $p) (i32.const 4)))
            (br $value)))
        (local.set $at (i32.add (local.get $out) (i32.shl (local.get $r0) (i32.const 2))))
        (f32.store (local.get $at) (f32.demote_f64 (f64.add (f64.promote_f32 (f32.load (local.get $at))) (local.get $sum))))
        (local.set $r0 (i32.add (local.get $r0) (i32.const 1)))
        (br $row))))

  ;; `count` zeros from dst.
  (func $zero_floats (param $dst i32) (param $count i32)
    (local $end i32)
    (local.set $end (i32.add (local.get $dst) (i32.shl (local.get $count) (i32.const 2))))
    (block $vdone
      (loop $vec
        (br_if $vdone (i32.gt_u (i32.add (local.get $dst) (i32.const 16)) (local.get $end)))
        (v128.store (local.get $dst) (v128.const i32x4 0 0 0 0))
        (local.set $dst (i32.add (local.get $dst) (i32.const 16)))
        (br $vec)))
    (block $done
      (loop $scalar
        (br_if $done (i32.ge_u (local.get $dst) (local.get $end)))
        (f32.store (local.get $dst) (f32.const 0))
        (local.set $dst (i32.add (local.get $dst) (i32.const 4)))
        (br $scalar))))

;; The patches of one image in the transposed layout the WebAssembly convolution keeps:
  ;; [K, positions], row kk = (c, ki, kj) holding that value of every window (0 for padding). With
  ;; stride 1 each output row's stretch is then a contiguous copy of part of an input row. For each
  ;; kk, the output rows whose input row is inside the image, [oy0, oy1), and their columns inside
  ;; it, [first, end), are worked out once; the rest is zeros.
  (func $im2col_t (export "im2col_t") (param $input i32) (param $colT i32)
    (param $channels i32) (param $height i32) (param $width i32) (param $kernelH i32) (param $kernelW i32)
    (param $strideH i32) (param $strideW i32) (param $padTop i32) (param $padLeft i32)
    (param $outHeight i32) (param $outWidth i32)
    (local $c i32) (local $ki i32) (local $kj i32) (local $plane i32) (local $planeBytes i32) (local $sxBytes i32)
    (local $x0 i32) (local $first i32) (local $end i32) (local $oy i32) (local $oy0 i32) (local $oy1 i32) (local $y0 i32)
    (local $n i32) (local $dst i32) (local $src i32) (local $to i32) (local $from i32) (local $last i32) (local $stop i32)
    (local $outRowBytes i32) (local $inRowStep i32) (local $padded i32) (local $tail i32)
    (local.set $planeBytes (i32.shl (i32.mul (local.get $height) (local.get $width)) (i32.const 2)))
    (local.set $sxBytes (i32.shl (local.get $strideW) (i32.const 2)))
    (local.set $outRowBytes (i32.shl (local.get $outWidth) (i32.const 2)))
    (local.set $inRowStep (i32.shl (i32.mul (local.get $strideH) (local.get $width)) (i32.const 2)))
    (local.set $dst (local.get $colT)) ;; row kk of colT
    (local.set $c (i32.const 0))
    (loop $channel
      (local.set $plane (i32.add (local.get $input) (i32.mul (local.get $c) (local.get $planeBytes))))
      (local.set $ki (i32.const 0))
      (loop $kernelRow
        ;; Output rows oy with input row oy·strideH + y0 inside [0, height).
        (local.set $y0 (i32.sub (local.get $ki) (local.get $padTop)))
        (local.set $oy0 (call $first_inside (local.get $y0) (local.get $strideH) (local.get $outHeight)))
        (local.set $oy1 (call $end_inside (local.get $y0) (local.get $strideH) (local.get $height) (local.get $outHeight) (local.get $oy0)))
        (local.set $kj (i32.const 0))
        (loop $kernelCol
          (local.set $x0 (i32.sub (local.get $kj) (local.get $padLeft)))
          (local.set $first (call $first_inside (local.get $x0) (local.get $strideW) (local.get $outWidth)))
          (local.set $end (call $end_inside (local.get $x0) (local.get $strideW) (local.get $width) (local.get $outWidth) (local.get $first)))
          (local.set $n (i32.sub (local.get $end) (local.get $first)))
          (local.set $padded (i32.or (local.get $first) (i32.ne (local.get $end) (local.get $outWidth))))
          ;; (Zeros by loops: memory.fill is a call out of the compiled code, too slow for a few
          ;; values.) Rows above and below the image:
          (call $zero_floats (local.get $dst) (i32.mul (local.get $oy0) (local.get $outWidth)))
          (call $zero_floats (i32.add (local.get $dst) (i32.mul (local.get $oy1) (local.get $outRowBytes)))
            (i32.mul (i32.sub (local.get $outHeight) (local.get $oy1)) (local.get $outWidth)))
          ;; The rows inside: from points at input (oy·strideH + y0, x0 + first·strideW), to at
          ;; output (oy, first).
          (local.set $src (i32.add (local.get $plane) (i32.shl (i32.add
            (i32.mul (i32.add (i32.mul (local.get $oy0) (local.get $strideH)) (local.get $y0)) (local.get $width))
            (i32.add (local.get $x0) (i32.mul (local.get $first) (local.get $strideW)))) (i32.const 2))))
          (local.set $to (i32.add (local.get $dst) (i32.add (i32.mul (local.get $oy0) (local.get $outRowBytes))
                                                           (i32.shl (local.get $first) (i32.const 2)))))
          ;; The last vector of a row's stretch starts this many bytes in (vectors need n >= 4).
          (local.set $tail (i32.shl (i32.sub (local.get $n) (i32.const 4)) (i32.const 2)))
          (local.set $oy (local.get $oy0))
          (block $rowsDone
            (loop $outRow
              (br_if $rowsDone (i32.ge_s (local.get $oy) (local.get $oy1)))
              (if (local.get $padded)
                (then
                  (call $zero_floats (i32.sub (local.get $to) (i32.shl (local.get $first) (i32.const 2))) (local.get $first))
                  (call $zero_floats (i32.add (local.get $to) (i32.shl (local.get $n) (i32.const 2)))
                    (i32.sub (local.get $outWidth) (local.get $end)))))
              (local.set $from (local.get $src))
              (if (i32.and (i32.eq (local.get $strideW) (i32.const 1)) (i32.ge_s (local.get $n) (i32.const 4)))
                (then
                  ;; Vectors, the last one ending exactly at `end` (it may overlap the one before:
                  ;; a copy can write a value twice).
                  (local.set $last (i32.add (local.get $to) (local.get $tail)))
                  (v128.store (local.get $last) (v128.load (i32.add (local.get $from) (local.get $tail))))
                  (local.set $stop (local.get $to))
                  (block $vdone
                    (loop $vec
                      (br_if $vdone (i32.ge_u (local.get $stop) (local.get $last)))
                      (v128.store (local.get $stop) (v128.load (local.get $from)))
                      (local.set $from (i32.add (local.get $from) (i32.const 16)))
                      (local.set $stop (i32.add (local.get $stop) (i32.const 16)))
                      (br $vec))))
                (else
                  (local.set $stop (local.get $to))
                  (local.set $last (i32.add (local.get $to) (i32.shl (local.get $n) (i32.const 2))))
                  (block $sdone
                    (loop $scalar
                      (br_if $sdone (i32.ge_u (local.get $stop) (local.get $last)))
                      (f32.store (local.get $stop) (f32.load (local.get $from)))
                      (local.set $from (i32.add (local.get $from) (local.get $sxBytes)))
                      (local.set $stop (i32.add (local.get $stop) (i32.const 4)))
                      (br $scalar)))))
              (local.set $src (i32.add (local.get $src) (local.get $inRowStep)))
              (local.set $to (i32.add (local.get $to) (local.get $outRowBytes)))
              (local.set $oy (i32.add (local.get $oy) (i32.const 1)))
              (br $outRow)))
          (local.set $dst (i32.add (local.get $dst) (i32.mul (local.get $outHeight) (local.get $outRowBytes))))
          (br_if $kernelCol (i32.lt_s (local.tee $kj (i32.add (local.get $kj) (i32.const 1))) (local.get $kernelW))))
        (br_if $kernelRow (i32.lt_s (local.tee $ki (i32.add (local.get $ki) (i32.const 1))) (local.get $kernelH))))
      (br_if $channel (i32.lt_s (local.tee $c (i32.add (local.get $c) (i32.const 1))) (local.get $channels)))))

  ;; The adjoint of im2col_t: each value of the transposed patches at colT added into the image
  ;; position it was read from (padding dropped), at inputGrad. The additions into each position
  ;; come in the same order as in col2im (kk, then oy), so the sums are the same, bit for bit.
  (func $col2im_t (export "col2im_t") (param $colT i32) (param $inputGrad i32)
    (param $channels i32) (param $height i32) (param $width i32) (param $kernelH i32) (param $kernelW i32)
    (param $strideH i32) (param $strideW i32) (param $padTop i32) (param $padLeft i32)
    (param $outHeight i32) (param $outWidth i32)
    (local $c i32) (local $ki i32) (local $kj i32) (local $plane i32) (local $planeBytes i32) (local $sxBytes i32)
    (local $x0 i32) (local $first i32) (local $end i32) (local $oy i32) (local $oy0 i32) (local $oy1 i32) (local $y0 i32)
    (local $n i32) (local $src i32) (local $dst i32) (local $to i32) (local $from i32) (local $stop i32) (local $stop4 i32)
    (local $outRowBytes i32) (local $inRowStep i32)
    (local.set $planeBytes (i32.shl (i32.mul (local.get $height) (local.get $width)) (i32.const 2)))
    (local.set $sxBytes (i32.shl (local.get $strideW) (i32.const 2)))
    (local.set $outRowBytes (i32.shl (local.get $outWidth) (i32.const 2)))
    (local.set $inRowStep (i32.shl (i32.mul (local.get $strideH) (local.get $width)) (i32.const 2)))
    (local.set $src (local.get $colT)) ;; row kk of colT
    (local.set $c (i32.const 0))
    (loop $channel
      (local.set $plane (i32.add (local.get $inputGrad) (i32.mul (local.get $c) (local.get $planeBytes))))
      (local.set $ki (i32.const 0))
      (loop $kernelRow
        (local.set $y0 (i32.sub (local.get $ki) (local.get $padTop)))
        (local.set $oy0 (call $first_inside (local.get $y0) (local.get $strideH) (local.get $outHeight)))
        (local.set $oy1 (call $end_inside (local.get $y0) (local.get $strideH) (local.get $height) (local.get $outHeight) (local.get $oy0)))
        (local.set $kj (i32.const 0))
        (loop $kernelCol
          (local.set $x0 (i32.sub (local.get $kj) (local.get $padLeft)))
          (local.set $first (call $first_inside (local.get $x0) (local.get $strideW) (local.get $outWidth)))
          (local.set $end (call $end_inside (local.get $x0) (local.get $strideW) (local.get $width) (local.get $outWidth) (local.get $first)))
          (local.set $n (i32.sub (local.get $end) (local.get $first)))
          ;; dst: the image at (oy0·strideH + y0, x0 + first·strideW); from: colT at (oy0, first).
          (local.set $dst (i32.add (local.get $plane) (i32.shl (i32.add
            (i32.mul (i32.add (i32.mul (local.get $oy0) (local.get $strideH)) (local.get $y0)) (local.get $width))
            (i32.add (local.get $x0) (i32.mul (local.get $first) (local.get $strideW)))) (i32.const 2))))
          (local.set $from (i32.add (local.get $src) (i32.add (i32.mul (local.get $oy0) (local.get $outRowBytes))
                                                             (i32.shl (local.get $first) (i32.const 2)))))
          (local.set $oy (local.get $oy0))
          (block $rowsDone
            (loop $outRow
              (br_if $rowsDone (i32.ge_s (local.get $oy) (local.get $oy1)))
              (local.set $to (local.get $dst))
              (local.set $stop (i32.add (local.get $from) (i32.shl (local.get $n) (i32.const 2))))
              (if (i32.eq (local.get $strideW) (i32.const 1))
                (then
                  (local.set $stop4 (i32.sub (local.get $stop) (i32.const 12)))
                  (block $vdone
                    (loop $vec
                      (br_if $vdone (i32.ge_u (local.get $from) (local.get $stop4)))
                      (v128.store (local.get $to) (f32x4.add (v128.load (local.get $to)) (v128.load (local.get $from))))
                      (local.set $from (i32.add (local.get $from) (i32.const 16)))
                      (local.set $to (i32.add (local.get $to) (i32.const 16)))
                      (br $vec)))))
              (block $sdone
                (loop $scalar
                  (br_if $sdone (i32.ge_u (local.get $from) (local.get $stop)))
                  (f32.store (local.get $to) (f32.add (f32.load (local.get $to)) (f32.load (local.get $from))))
                  (local.set $from (i32.add (local.get $from) (i32.const 4)))
                  (local.set $to (i32.add (local.get $to) (local.get $sxBytes)))
                  (br $scalar)))
              ;; Next row: `from` has reached `stop`, (oy, end); on to (oy + 1, first).
              (local.set $from (i32.add (local.get $stop) (i32.shl (i32.sub (local.get $outWidth) (local.get $n)) (i32.const 2))))
              (local.set $dst (i32.add (local.get $dst) (local.get $inRowStep)))
              (local.set $oy (i32.add (local.get $oy) (i32.const 1)))
              (br $outRow)))
          (local.set $src (i32.add (local.get $src) (i32.mul (local.get $outHeight) (local.get $outRowBytes))))
          (br_if $kernelCol (i32.lt_s (local.tee $kj (i32.add (local.get $kj) (i32.const 1))) (local.get $kernelW))))
        (br_if $kernelRow (i32.lt_s (local.tee $ki (i32.add (local.get $ki) (i32.const 1))) (local.get $kernelH))))
      (br_if $channel (i32.lt_s (local.tee $c (i32.add (local.get $c) (i32.const 1))) (local.get $channels)))))

  ;; ------------------------------------------------------------------------------------------
  ;; Max pooling
  ;; ------------------------------------------------------------------------------------------

  ;; Whether v beats best: larger, or a NaN over a number (the first NaN wins, so that divergence
  ;; stays visible), as the JS kernel's `beats`.
  (func $beats (param $v f32) (param $best f32) (result i32)
    (i32.or (f32.gt (local.get $v) (local.get $best))
            (i32.and (f32.ne (local.get $v) (local.get $v)) (f32.eq (local.get $best) (local.get $best)))))

  ;; One 2×2 window with top-left value at index `at` (rows `width` apart) of the input at `input`:
  ;; the first maximum in row-major order (the first NaN if any). Returns its index.
  (func $window_2x2 (param $input i32) (param $at i32) (param $width i32) (result i32)
    (local $best i32) (local $i i32)
    (local.set $best (local.get $at))
    (local.set $i (i32.add (local.get $at) (i32.const 1)))
    (if (call $beats (f32.load (i32.add (local.get $input) (i32.shl (local.get $i) (i32.const 2))))
                     (f32.load (i32.add (local.get $input) (i32.shl (local.get $best) (i32.const 2)))))
      (then (local.set $best (local.get $i))))
    (local.set $i (i32.add (local.get $at) (local.get $width)))
    (if (call $beats (f32.load (i32.add (local.get $input) (i32.shl (local.get $i) (i32.const 2))))
                     (f32.load (i32.add (local.get $input) (i32.shl (local.get $best) (i32.const 2)))))
      (then (local.set $best (local.get $i))))
    (local.set $i (i32.add (local.get $i) (i32.const 1)))
    (if (call $beats (f32.load (i32.add (local.get $input) (i32.shl (local.get $i) (i32.const 2))))
                     (f32.load (i32.add (local.get $input) (i32.shl (local.get $best) (i32.const 2)))))
      (then (local.set $best (local.get $i))))
    (local.get $best))

  ;; 2×2 windows with stride 2 and no padding over `planes` planes of height × width, giving
  ;; outHeight × outWidth each (windows that do not fit are dropped). output gets each window's
  ;; maximum and argmax its index in the input (counted from `input`), the first maximum in
  ;; row-major order, as the JS kernel. Four windows at a time: the left and right columns of two
  ;; rows are separated by shuffles, then a tournament by comparisons and selects. A group of
  ;; windows holding a NaN takes the window-by-window rule (a NaN wins).
  ;; Planes [p0, planes) only (a helper thread's range): output and argmax from plane p0 on, indices
  ;; still counted from `input`.
  (func $max_pool_2x2 (export "max_pool_2x2") (param $input i32) (param $output i32) (param $argmax i32) (param $p0 i32) (param $planes i32)
        (param $height i32) (param $width i32) (param $outHeight i32) (param $outWidth i32)
    (local $plane i32) (local $oy i32) (local $ox i32) (local $o i32) (local $top i32) (local $at i32)
    (local $a0 v128) (local $a1 v128) (local $b0 v128) (local $b1 v128)
    (local $tl v128) (local $tr v128) (local $bl v128) (local $br v128)
    (local $tgt v128) (local $bgt v128) (local $tv v128) (local $bv v128) (local $win v128)
    (local $idx v128) (local $ti v128) (local $bi v128) (local $rowBytes i32) (local $p i32) (local $k i32)
    (local.set $rowBytes (i32.shl (local.get $width) (i32.const 2)))
    (local.set $o (i32.mul (local.get $p0) (i32.mul (local.get $outHeight) (local.get $outWidth))))
    (local.set $plane (local.get $p0))
    (block $planesDone
      (loop $planeLoop
        (br_if $planesDone (i32.ge_s (local.get $plane) (local.get $planes)))
        (local.set $oy (i32.const 0))
        (block $rowsDone
          (loop $rowLoop
            (br_if $rowsDone (i32.ge_s (local.get $oy) (local.get $outHeight)))
            ;; Index of the top-left value of window (oy, 0).
            (local.set $top (i32.add (i32.mul (local.get $plane) (i32.mul (local.get $height) (local.get $width)))
                                     (i32.mul (i32.shl (local.get $oy) (i32.const 1)) (local.get $width))))
            (local.set $ox (i32.const 0))
            (block $groupsDone
              (loop $group
                (br_if $groupsDone (i32.gt_s (i32.add (local.get $ox) (i32.const 4)) (local.get $outWidth)))
                (local.set $at (i32.add (local.get $top) (i32.shl (local.get $ox) (i32.const 1))))
                (local.set $p (i32.add (local.get $input) (i32.shl (local.get $at) (i32.const 2))))
                (local.set $a0 (v128.load (local.get $p)))
                (local.set $a1 (v128.load offset=16 (local.get $p)))
                (local.set $p (i32.add (local.get $p) (local.get $rowBytes)))
                (local.set $b0 (v128.load (local.get $p)))
                (local.set $b1 (v128.load offset=16 (local.get $p)))
                (local.set $tl (i8x16.shuffle 0 1 2 3 8 9 10 11 16 17 18 19 24 25 26 27 (local.get $a0) (local.get $a1)))
                (local.set $tr (i8x16.shuffle 4 5 6 7 12 13 14 15 20 21 22 23 28 29 30 31 (local.get $a0) (local.get $a1)))
                (local.set $bl (i8x16.shuffle 0 1 2 3 8 9 10 11 16 17 18 19 24 25 26 27 (local.get $b0) (local.get $b1)))
                (local.set $br (i8x16.shuffle 4 5 6 7 12 13 14 15 20 21 22 23 28 29 30 31 (local.get $b0) (local.get $b1)))
                (if (v128.any_true (v128.or
                      (v128.or (f32x4.ne (local.get $tl) (local.get $tl)) (f32x4.ne (local.get $tr) (local.get $tr)))
                      (v128.or (f32x4.ne (local.get $bl) (local.get $bl)) (f32x4.ne (local.get $br) (local.get $br)))))
                  (then
                    (local.set $k (i32.const 0))
                    (loop $each
                      (local.set $p (call $window_2x2 (local.get $input)
                        (i32.add (local.get $at) (i32.shl (local.get $k) (i32.const 1))) (local.get $width)))
                      (i32.store (i32.add (local.get $argmax) (i32.shl (i32.add (local.get $o) (local.get $k)) (i32.const 2))) (local.get $p))
                      (f32.store (i32.add (local.get $output) (i32.shl (i32.add (local.get $o) (local.get $k)) (i32.const 2)))
                        (f32.load (i32.add (local.get $input) (i32.shl (local.get $p) (i32.const 2)))))
                      (br_if $each (i32.lt_s (local.tee $k (i32.add (local.get $k) (i32.const 1))) (i32.const 4)))))
                  (else
                    ;; Each row's winner is its first maximum (right only when strictly greater),
                    ;; then the bottom one only when strictly greater than the top one. Comparison
                    ;; masks are -1 where true, so index - mask adds 1.
                    (local.set $idx (i32x4.add (i32x4.splat (local.get $at)) (v128.const i32x4 0 2 4 6)))
                    (local.set $tgt (f32x4.gt (local.get $tr) (local.get $tl)))
                    (local.set $bgt (f32x4.gt (local.get $br) (local.get $bl)))
                    (local.set $tv (v128.bitselect (local.get $tr) (local.get $tl) (local.get $tgt)))
                    (local.set $bv (v128.bitselect (local.get $br) (local.get $bl) (local.get $bgt)))
                    (local.set $ti (i32x4.sub (local.get $idx) (local.get $tgt)))
                    (local.set $bi (i32x4.sub (i32x4.add (local.get $idx) (i32x4.splat (local.get $width))) (local.get $bgt)))
                    (local.set $win (f32x4.gt (local.get $bv) (local.get $tv)))
                    (v128.store (i32.add (local.get $output) (i32.shl (local.get $o) (i32.const 2)))
                      (v128.bitselect (local.get $bv) (local.get $tv) (local.get $win)))
                    (v128.store (i32.add (local.get $argmax) (i32.shl (local.get $o) (i32.const 2)))
                      (v128.bitselect (local.get $bi) (local.get $ti) (local.get $win)))))
                (local.set $o (i32.add (local.get $o) (i32.const 4)))
                (local.set $ox (i32.add (local.get $ox) (i32.const 4)))
                (br $group)))
            ;; The last outWidth % 4 windows of the row.
            (block $tailDone
              (loop $tail
                (br_if $tailDone (i32.ge_s (local.get $ox) (local.get $outWidth)))
                (local.set $p (call $window_2x2 (local.get $input)
                  (i32.add (local.get $top) (i32.shl (local.get $ox) (i32.const 1))) (local.get $width)))
                (i32.store (i32.add (local.get $argmax) (i32.shl (local.get $o) (i32.const 2))) (local.get $p))
                (f32.store (i32.add (local.get $output) (i32.shl (local.get $o) (i32.const 2)))
                  (f32.load (i32.add (local.get $input) (i32.shl (local.get $p) (i32.const 2)))))
                (local.set $o (i32.add (local.get $o) (i32.const 1)))
                (local.set $ox (i32.add (local.get $ox) (i32.const 1)))
                (br $tail)))
            (local.set $oy (i32.add (local.get $oy) (i32.const 1)))
            (br $rowLoop)))
        (local.set $plane (i32.add (local.get $plane) (i32.const 1)))
        (br $planeLoop))))

  ;; inputGrad values [z0, z1) = 0, plus each of the output gradients [o0, o1) at its argmax (an
  ;; index counted from inputGrad), in output order (as the JS kernel: overlapping windows add in the
  ;; same order). A range of whole planes (z and o both) is independent of every other plane.
  (func $max_pool_backward (export "max_pool_backward") (param $gradOutput i32) (param $argmax i32) (param $inputGrad i32)
        (param $o0 i32) (param $o1 i32) (param $z0 i32) (param $z1 i32)
    (local $end i32) (local $at i32)
    (memory.fill (i32.add (local.get $inputGrad) (i32.shl (local.get $z0) (i32.const 2))) (i32.const 0)
      (i32.shl (i32.sub (local.get $z1) (local.get $z0)) (i32.const 2)))
    (local.set $end (i32.add (local.get $argmax) (i32.shl (local.get $o1) (i32.const 2))))
    (local.set $argmax (i32.add (local.get $argmax) (i32.shl (local.get $o0) (i32.const 2))))
    (local.set $gradOutput (i32.add (local.get $gradOutput) (i32.shl (local.get $o0) (i32.const 2))))
    (block $done
      (loop $each
        (br_if $done (i32.ge_u (local.get $argmax) (local.get $end)))
        (local.set $at (i32.add (local.get $inputGrad) (i32.shl (i32.load (local.get $argmax)) (i32.const 2))))
        (f32.store (local.get $at) (f32.add (f32.load (local.get $at)) (f32.load (local.get $gradOutput))))
        (local.set $argmax (i32.add (local.get $argmax) (i32.const 4)))
        (local.set $gradOutput (i32.add (local.get $gradOutput) (i32.const 4)))
        (br $each))))

  ;; ------------------------------------------------------------------------------------------
  ;; Optimizer loops, over ranges of the flat parameter buffers, so that helper threads can each
  ;; take one. Each value gives the JS reference's float32 result bit for bit: the JS expressions
  ;; run in double precision and round to float32 when stored, and so does this code (f64x2).
  ;; ------------------------------------------------------------------------------------------

  ;; SGD with momentum (optimizers/sgd.ts), values [i0, i1):
  ;;   g = grad + decay·w;  v = f32(momentum·v + g);  w = f32(w - lr·(nesterov ? g + momentum·v : v))
  (func $sgd_update (export "sgd_update") (param $w i32) (param $g i32) (param $v i32) (param $i0 i32) (param $i1 i32)
        (param $lr f64) (param $momentum f64) (param $decay f64) (param $nesterov i32)
    (local $end i32) (local $end2 i32) (local $off i32)
    (local $wv v128) (local $gv v128) (local $vv v128) (local $lrv v128) (local $mv v128) (local $dv v128)
    (local $ws f64) (local $gs f64) (local $vs f64)
    (local.set $lrv (f64x2.splat (local.get $lr)))
    (local.set $mv (f64x2.splat (local.get $momentum)))
    (local.set $dv (f64x2.splat (local.get $decay)))
    (local.set $off (i32.shl (local.get $i0) (i32.const 2)))
    (local.set $end (i32.shl (local.get $i1) (i32.const 2)))
    (local.set $end2 (i32.add (local.get $off)
      (i32.shl (i32.and (i32.sub (local.get $i1) (local.get $i0)) (i32.const -2)) (i32.const 2))))
    (block $done
      (loop $pairs
        (br_if $done (i32.ge_u (local.get $off) (local.get $end2)))
        (local.set $wv (f64x2.promote_low_f32x4 (v128.load64_zero (i32.add (local.get $w) (local.get $off)))))
        (local.set $gv (f64x2.add (f64x2.promote_low_f32x4 (v128.load64_zero (i32.add (local.get $g) (local.get $off))))
                                  (f64x2.mul (local.get $dv) (local.get $wv))))
        (local.set $vv (f64x2.promote_low_f32x4 (f32x4.demote_f64x2_zero
          (f64x2.add (f64x2.mul (local.get $mv)
                                (f64x2.promote_low_f32x4 (v128.load64_zero (i32.add (local.get $v) (local.get $off)))))
                     (local.get $gv)))))
        (v128.store64_lane 0 (i32.add (local.get $v) (local.get $off)) (f32x4.demote_f64x2_zero (local.get $vv)))
        (if (local.get $nesterov)
          (then (local.set $vv (f64x2.add (local.get $gv) (f64x2.mul (local.get $mv) (local.get $vv))))))
        (v128.store64_lane 0 (i32.add (local.get $w) (local.get $off))
          (f32x4.demote_f64x2_zero (f64x2.sub (local.get $wv) (f64x2.mul (local.get $lrv) (local.get $vv)))))
        (local.set $off (i32.add (local.get $off) (i32.const 8)))
        (br $pairs)))
    (if (i32.lt_u (local.get $off) (local.get $end))
      (then
        (local.set $ws (f64.promote_f32 (f32.load (i32.add (local.get $w) (local.get $off)))))
        (local.set $gs (f64.add (f64.promote_f32 (f32.load (i32.add (local.get $g) (local.get $off))))
                                (f64.mul (local.get $decay) (local.get $ws))))
        (local.set $vs (f64.promote_f32 (f32.demote_f64
          (f64.add (f64.mul (local.get $momentum) (f64.promote_f32 (f32.load (i32.add (local.get $v) (local.get $off)))))
                   (local.get $gs)))))
        (f32.store (i32.add (local.get $v) (local.get $off)) (f32.demote_f64 (local.get $vs)))
        (if (local.get $nesterov)
          (then (local.set $vs (f64.add (local.get $gs) (f64.mul (local.get $momentum) (local.get $vs))))))
        (f32.store (i32.add (local.get $w) (local.get $off))
          (f32.demote_f64 (f64.sub (local.get $ws) (f64.mul (local.get $lr) (local.get $vs))))))))

  ;; Adam (optimizers/adam.ts), values [i0, i1), each step of the JS reference in the same order:
  ;;   decoupled (AdamW): w = f32(w·shrink);  g = grad + l2·w;
  ;;   m = f32(β1·m + (1-β1)·g);  v = f32(β2·v + ((1-β2)·g)·g);  w = f32(w - (stepSize·m) / (√v / c2 + eps))
  ;; Pairs of values in f64x2 lanes (each lane the scalar code's operations), then the odd one.
  (func $adam_update (export "adam_update") (param $w i32) (param $g i32) (param $m i32) (param $v i32) (param $i0 i32) (param $i1 i32)
        (param $beta1 f64) (param $beta2 f64) (param $eps f64) (param $l2 f64) (param $shrink f64) (param $decoupled i32)
        (param $stepSize f64) (param $correction2 f64)
    (local $off i32) (local $end2 i32) (local $wv v128) (local $gv v128) (local $mv v128) (local $vv v128)
    (local $b1 v128) (local $b2 v128) (local $c1 v128) (local $c2 v128) (local $epsv v128) (local $l2v v128)
    (local $shrinkv v128) (local $stepv v128) (local $corrv v128)
    (local.set $b1 (f64x2.splat (local.get $beta1)))
    (local.set $b2 (f64x2.splat (local.get $beta2)))
    (local.set $c1 (f64x2.splat (f64.sub (f64.const 1) (local.get $beta1))))
    (local.set $c2 (f64x2.splat (f64.sub (f64.const 1) (local.get $beta2))))
    (local.set $epsv (f64x2.splat (local.get $eps)))
    (local.set $l2v (f64x2.splat (local.get $l2)))
    (local.set $shrinkv (f64x2.splat (local.get $shrink)))
    (local.set $stepv (f64x2.splat (local.get $stepSize)))
    (local.set $corrv (f64x2.splat (local.get $correction2)))
    (local.set $off (i32.shl (local.get $i0) (i32.const 2)))
    (local.set $end2 (i32.add (local.get $off)
      (i32.shl (i32.and (i32.sub (local.get $i1) (local.get $i0)) (i32.const -2)) (i32.const 2))))
    (block $done
      (loop $pairs
        (br_if $done (i32.ge_u (local.get $off) (local.get $end2)))
        (if (local.get $decoupled)
          (then (v128.store64_lane 0 (i32.add (local.get $w) (local.get $off))
            (f32x4.demote_f64x2_zero (f64x2.mul (f64x2.promote_low_f32x4 (v128.load64_zero (i32.add (local.get $w) (local.get $off))))
                                                (local.get $shrinkv))))))
        (local.set $wv (f64x2.promote_low_f32x4 (v128.load64_zero (i32.add (local.get $w) (local.get $off)))))
        (local.set $gv (f64x2.add (f64x2.promote_low_f32x4 (v128.load64_zero (i32.add (local.get $g) (local.get $off))))
                                  (f64x2.mul (local.get $l2v) (local.get $wv))))
        (local.set $mv (f64x2.promote_low_f32x4 (f32x4.demote_f64x2_zero
          (f64x2.add (f64x2.mul (local.get $b1) (f64x2.promote_low_f32x4 (v128.load64_zero (i32.add (local.get $m) (local.get $off)))))
                     (f64x2.mul (local.get $c1) (local.get $gv))))))
        (v128.store64_lane 0 (i32.add (local.get $m) (local.get $off)) (f32x4.demote_f64x2_zero (local.get $mv)))
        (local.set $vv (f64x2.promote_low_f32x4 (f32x4.demote_f64x2_zero
          (f64x2.add (f64x2.mul (local.get $b2) (f64x2.promote_low_f32x4 (v128.load64_zero (i32.add (local.get $v) (local.get $off)))))
                     (f64x2.mul (f64x2.mul (local.get $c2) (local.get $gv)) (local.get $gv))))))
        (v128.store64_lane 0 (i32.add (local.get $v) (local.get $off)) (f32x4.demote_f64x2_zero (local.get $vv)))
        (v128.store64_lane 0 (i32.add (local.get $w) (local.get $off))
          (f32x4.demote_f64x2_zero (f64x2.sub (local.get $wv)
            (f64x2.div (f64x2.mul (local.get $stepv) (local.get $mv))
                       (f64x2.add (f64x2.div (f64x2.sqrt (local.get $vv)) (local.get $corrv)) (local.get $epsv))))))
        (local.set $off (i32.add (local.get $off) (i32.const 8)))
        (br $pairs)))
    (if (i32.lt_u (i32.shr_u (local.get $off) (i32.const 2)) (local.get $i1))
      (then (call $adam_update_scalar (local.get $w) (local.get $g) (local.get $m) (local.get $v)
        (i32.shr_u (local.get $off) (i32.const 2)) (local.get $i1) (local.get $beta1) (local.get $beta2) (local.get $eps)
        (local.get $l2) (local.get $shrink) (local.get $decoupled) (local.get $stepSize) (local.get $correction2)))))

  (func $adam_update_scalar (param $w i32) (param $g i32) (param $m i32) (param $v i32) (param $i0 i32) (param $i1 i32)
        (param $beta1 f64) (param $beta2 f64) (param $eps f64) (param $l2 f64) (param $shrink f64) (param $decoupled i32)
        (param $stepSize f64) (param $correction2 f64)
    (local $off i32) (local $end i32) (local $wd f64) (local $gd f64) (local $md f64) (local $vd f64)
    (local $c1 f64) (local $c2 f64)
    (local.set $c1 (f64.sub (f64.const 1) (local.get $beta1)))
    (local.set $c2 (f64.sub (f64.const 1) (local.get $beta2)))
    (local.set $off (i32.shl (local.get $i0) (i32.const 2)))
    (local.set $end (i32.shl (local.get $i1) (i32.const 2)))
    (block $done
      (loop $each
        (br_if $done (i32.ge_u (local.get $off) (local.get $end)))
        (if (local.get $decoupled)
          (then (f32.store (i32.add (local.get $w) (local.get $off))
            (f32.demote_f64 (f64.mul (f64.promote_f32 (f32.load (i32.add (local.get $w) (local.get $off)))) (local.get $shrink))))))
        (local.set $wd (f64.promote_f32 (f32.load (i32.add (local.get $w) (local.get $off)))))
        (local.set $gd (f64.add (f64.promote_f32 (f32.load (i32.add (local.get $g) (local.get $off))))
                                (f64.mul (local.get $l2) (local.get $wd))))
        (local.set $md (f64.promote_f32 (f32.demote_f64
          (f64.add (f64.mul (local.get $beta1) (f64.promote_f32 (f32.load (i32.add (local.get $m) (local.get $off)))))
                   (f64.mul (local.get $c1) (local.get $gd))))))
        (f32.store (i32.add (local.get $m) (local.get $off)) (f32.demote_f64 (local.get $md)))
        (local.set $vd (f64.promote_f32 (f32.demote_f64
          (f64.add (f64.mul (local.get $beta2) (f64.promote_f32 (f32.load (i32.add (local.get $v) (local.get $off)))))
                   (f64.mul (f64.mul (local.get $c2) (local.get $gd)) (local.get $gd))))))
        (f32.store (i32.add (local.get $v) (local.get $off)) (f32.demote_f64 (local.get $vd)))
        (f32.store (i32.add (local.get $w) (local.get $off))
          (f32.demote_f64 (f64.sub (local.get $wd)
            (f64.div (f64.mul (local.get $stepSize) (local.get $md))
                     (f64.add (f64.div (f64.sqrt (local.get $vd)) (local.get $correction2)) (local.get $eps))))))
        (local.set $off (i32.add (local.get $off) (i32.const 4)))
        (br $each))))

  ;; The bound at `share` (of SHARE_ONE = 65536, parallel.ts) of `count` rows, in steps of 8, as
  ;; parallel.ts: chunkBounds cuts a product's rows or columns into one range per thread by the
  ;; threads' shares: min(count, 8·ceil(ceil(count / 8)·share / 65536)).
  (func $part_bound (param $count i32) (param $share i32) (result i32)
    (local $at i32)
    (local.set $at (i32.shl
      (i32.wrap_i64 (i64.shr_u
        (i64.add (i64.mul (i64.extend_i32_u (i32.shr_u (i32.add (local.get $count) (i32.const 7)) (i32.const 3)))
                          (i64.extend_i32_u (local.get $share)))
                 (i64.const 65535))
        (i64.const 16)))
      (i32.const 3)))
    (select (local.get $count) (local.get $at) (i32.gt_u (local.get $at) (local.get $count))))

  ;; sgd_update on the part between shares `from` and `to` (of 65536) of every parameter block. The
  ;; table at `table` holds `count` blocks of three i32: the block's first value, its rows, its columns
  ;; (row-major). A part is a run of whole rows of each block (part_bound): the rows of a dense
  ;; layer's weights [units, in] that the thread computing those units' outputs and gradients also
  ;; updates.
  (func $sgd_update_blocks (export "sgd_update_blocks") (param $w i32) (param $g i32) (param $v i32)
        (param $table i32) (param $count i32) (param $from i32) (param $to i32)
        (param $lr f64) (param $momentum f64) (param $decay f64) (param $nesterov i32)
    (local $end i32) (local $rows i32) (local $cols i32)
    (local.set $end (i32.add (local.get $table) (i32.mul (local.get $count) (i32.const 12))))
    (block $done
      (loop $blocks
        (br_if $done (i32.ge_u (local.get $table) (local.get $end)))
        (local.set $rows (i32.load offset=4 (local.get $table)))
        (local.set $cols (i32.load offset=8 (local.get $table)))
        (call $sgd_update (local.get $w) (local.get $g) (local.get $v)
          (i32.add (i32.load (local.get $table))
                   (i32.mul (call $part_bound (local.get $rows) (local.get $from)) (local.get $cols)))
          (i32.add (i32.load (local.get $table))
                   (i32.mul (call $part_bound (local.get $rows) (local.get $to))
                            (local.get $cols)))
          (local.get $lr) (local.get $momentum) (local.get $decay) (local.get $nesterov))
        (local.set $table (i32.add (local.get $table) (i32.const 12)))
        (br $blocks))))

  ;; adam_update on the part between shares `from` and `to` of every parameter block (as
  ;; sgd_update_blocks).
  (func $adam_update_blocks (export "adam_update_blocks") (param $w i32) (param $g i32) (param $m i32) (param $v i32)
        (param $table i32) (param $count i32) (param $from i32) (param $to i32)
        (param $beta1 f64) (param $beta2 f64) (param $eps f64) (param $l2 f64) (param $shrink f64) (param $decoupled i32)
        (param $stepSize f64) (param $correction2 f64)
    (local $end i32) (local $rows i32) (local $cols i32)
    (local.set $end (i32.add (local.get $table) (i32.mul (local.get $count) (i32.const 12))))
    (block $done
      (loop $blocks
        (br_if $done (i32.ge_u (local.get $table) (local.get $end)))
        (local.set $rows (i32.load offset=4 (local.get $table)))
        (local.set $cols (i32.load offset=8 (local.get $table)))
        (call $adam_update (local.get $w) (local.get $g) (local.get $m) (local.get $v)
          (i32.add (i32.load (local.get $table))
                   (i32.mul (call $part_bound (local.get $rows) (local.get $from)) (local.get $cols)))
          (i32.add (i32.load (local.get $table))
                   (i32.mul (call $part_bound (local.get $rows) (local.get $to))
                            (local.get $cols)))
          (local.get $beta1) (local.get $beta2) (local.get $eps) (local.get $l2) (local.get $shrink)
          (local.get $decoupled) (local.get $stepSize) (local.get $correction2))
        (local.set $table (i32.add (local.get $table) (i32.const 12)))
        (br $blocks))))

  ;; dst[i] += src[i] for values [i0, i1) (adding a helper's gradients into the model's).
  (func $add_floats (export "add_floats") (param $dst i32) (param $src i32) (param $i0 i32) (param $i1 i32)
    (local $off i32) (local $end i32) (local $end4 i32)
    (local.set $off (i32.shl (local.get $i0) (i32.const 2)))
    (local.set $end (i32.shl (local.get $i1) (i32.const 2)))
    (local.set $end4 (i32.add (local.get $off)
      (i32.shl (i32.and (i32.sub (local.get $i1) (local.get $i0)) (i32.const -4)) (i32.const 2))))
    (block $done
      (loop $quads
        (br_if $done (i32.ge_u (local.get $off) (local.get $end4)))
        (v128.store (i32.add (local.get $dst) (local.get $off))
          (f32x4.add (v128.load (i32.add (local.get $dst) (local.get $off)))
                     (v128.load (i32.add (local.get $src) (local.get $off)))))
        (local.set $off (i32.add (local.get $off) (i32.const 16)))
        (br $quads)))
    (block $tail_done
      (loop $tail
        (br_if $tail_done (i32.ge_u (local.get $off) (local.get $end)))
        (f32.store (i32.add (local.get $dst) (local.get $off))
          (f32.add (f32.load (i32.add (local.get $dst) (local.get $off)))
                   (f32.load (i32.add (local.get $src) (local.get $off)))))
        (local.set $off (i32.add (local.get $off) (i32.const 4)))
        (br $tail))))

  ;; Values per block of sum_squares_blocks.
  (func $squares_block (export "squares_block") (result i32) (i32.const 2048))

  ;; The sums of squares of a's `count` values in blocks of 2048, blocks [b0, b1), into the float64
  ;; values at out + 8·b. A block is summed the same way wherever it is computed: four lanes (lane l
  ;; takes the values at offsets ≡ l mod 4 below the block's length rounded down to 4), added as
  ;; (l0 + l2) + (l1 + l3), then the last length mod 4 squares in order; all in double precision.
  (func $sum_squares_blocks (export "sum_squares_blocks") (param $a i32) (param $count i32) (param $b0 i32) (param $b1 i32)
        (param $out i32)
    (local $p i32) (local $end i32) (local $end4 i32) (local $lo v128) (local $hi v128) (local $x v128)
    (local $s f64) (local $t f64)
    (block $blocksDone
      (loop $blocks
        (br_if $blocksDone (i32.ge_s (local.get $b0) (local.get $b1)))
        (local.set $p (i32.add (local.get $a) (i32.shl (local.get $b0) (i32.const 13))))
        (local.set $end (i32.add (local.get $a) (i32.shl
          (call $min (local.get $count) (i32.shl (i32.add (local.get $b0) (i32.const 1)) (i32.const 11))) (i32.const 2))))
        (local.set $end4 (i32.add (local.get $p) (i32.and (i32.sub (local.get $end) (local.get $p)) (i32.const -16))))
        (local.set $lo (v128.const i32x4 0 0 0 0))
        (local.set $hi (v128.const i32x4 0 0 0 0))
        (block $vecDone
          (loop $vec
            (br_if $vecDone (i32.ge_u (local.get $p) (local.get $end4)))
            (local.set $x (v128.load (local.get $p)))
            (local.set $lo (f64x2.add (local.get $lo)
              (f64x2.mul (f64x2.promote_low_f32x4 (local.get $x)) (f64x2.promote_low_f32x4 (local.get $x)))))
            (local.set $x (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $x) (local.get $x)))
            (local.set $hi (f64x2.add (local.get $hi)
              (f64x2.mul (f64x2.promote_low_f32x4 (local.get $x)) (f64x2.promote_low_f32x4 (local.get $x)))))
            (local.set $p (i32.add (local.get $p) (i32.const 16)))
            (br $vec)))
        ;; lo holds lanes 0 and 1, hi lanes 2 and 3.
        (local.set $lo (f64x2.add (local.get $lo) (local.get $hi)))
        (local.set $s (f64.add (f64x2.extract_lane 0 (local.get $lo)) (f64x2.extract_lane 1 (local.get $lo))))
        (block $tailDone
          (loop $tail
            (br_if $tailDone (i32.ge_u (local.get $p) (local.get $end)))
            (local.set $t (f64.promote_f32 (f32.load (local.get $p))))
            (local.set $s (f64.add (local.get $s) (f64.mul (local.get $t) (local.get $t))))
            (local.set $p (i32.add (local.get $p) (i32.const 4)))
            (br $tail)))
        (f64.store (i32.add (local.get $out) (i32.shl (local.get $b0) (i32.const 3))) (local.get $s))
        (local.set $b0 (i32.add (local.get $b0) (i32.const 1)))
        (br $blocks))))

  ;; a = f32(a·factor) in double precision, values [i0, i1) (gradient clipping's scaling).
  (func $scale_floats (export "scale_floats") (param $a i32) (param $i0 i32) (param $i1 i32) (param $factor f64)
    (local $p i32) (local $end i32)
    (local.set $p (i32.add (local.get $a) (i32.shl (local.get $i0) (i32.const 2))))
    (local.set $end (i32.add (local.get $a) (i32.shl (local.get $i1) (i32.const 2))))
    (block $done
      (loop $each
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        (f32.store (local.get $p) (f32.demote_f64 (f64.mul (f64.promote_f32 (f32.load (local.get $p))) (local.get $factor))))
        (local.set $p (i32.add (local.get $p) (i32.const 4)))
        (br $each))))
)
