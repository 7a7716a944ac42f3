;; examples.WasmHeartbeatSensor: a WASM sensor in WebAssembly text form. Every poll it reads
;; its input ({"config", "state", "poll", "triggers"}) from stdin and writes
;;   [{"input": <the input>}]
;; to stdout: one payload for its trigger type, examples.wasm_heartbeat. A sensor built from
;; Rust for wasm32-wasip1 does the same with serde_json; see docs/wasm.md.
(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (data (i32.const 64) "[{\"input\":")
  (data (i32.const 200) "}]\n")
  (func $write (param $fd i32) (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8))))
  (func (export "_start")
    (local $end i32)
    (local $n i32)
    (local.set $end (i32.const 1024))
    (block $done
      (loop $more
        (i32.store (i32.const 0) (local.get $end))
        (i32.store (i32.const 4) (i32.sub (i32.const 131072) (local.get $end)))
        (br_if $done (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
        (local.set $n (i32.load (i32.const 8)))
        (br_if $done (i32.eqz (local.get $n)))
        (local.set $end (i32.add (local.get $end) (local.get $n)))
        (br_if $done (i32.ge_u (local.get $end) (i32.const 131072)))
        (br $more)))
    (call $write (i32.const 1) (i32.const 64) (i32.const 10))
    (call $write (i32.const 1) (i32.const 1024) (i32.sub (local.get $end) (i32.const 1024)))
    (call $write (i32.const 1) (i32.const 200) (i32.const 3))))
