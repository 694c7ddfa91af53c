package btrfs

import "syscall"

type statT = syscall.Stat_t

func stat(path string, st *statT) error { return syscall.Stat(path, st) }
