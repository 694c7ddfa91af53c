package main

import "unsafe"

func unsafePtr(b []byte) unsafe.Pointer { return unsafe.Pointer(&b[0]) }

// sysFinitModule is finit_module(2) on x86_64 (absent from package syscall).
const sysFinitModule = 313
