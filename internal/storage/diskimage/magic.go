// Package diskimage recognises and validates disk images before anything is imported: the
// format is read from the content (magic numbers), cross-checked with the file name, a claimed
// format and `qemu-img info`/`qemu-img check`, and OVA archives are unpacked by their OVF.
package diskimage

import (
	"bytes"
	"encoding/binary"
	"path/filepath"
	"strings"
)

// Format names are qemu-img's driver names ("vpc" is VHD), plus "ova" for OVA archives.
const (
	Raw   = "raw"
	Qcow2 = "qcow2"
	VMDK  = "vmdk"
	VPC   = "vpc"
	VHDX  = "vhdx"
	VDI   = "vdi"
	QED   = "qed"
	OVA   = "ova"
	// Formats that are recognised only to be refused.
	LUKS      = "luks"
	Gzip      = "gzip"
	XZ        = "xz"
	Zip       = "zip"
	VMDKDescr = "vmdk-descriptor"
)

// magics are the signatures DetectFormat looks for, in order: the first match wins.
var magics = []struct {
	off    int
	magic  string
	format string
}{
	{0, "QFI\xfb", Qcow2},
	{0, "KDMV", VMDK},
	{0, "vhdxfile", VHDX},
	{0, "conectix", VPC},
	{0, "QED\x00", QED},
	{0x40, "\x7f\x10\xda\xbe", VDI}, // 0xbeda107f, little-endian
	{0, "LUKS\xba\xbe", LUKS},
	{0, "\x1f\x8b", Gzip},
	{0, "\xfd7zXZ\x00", XZ},
	{0, "PK\x03\x04", Zip},
	{257, "ustar", OVA},
	{0, "# Disk DescriptorFile", VMDKDescr},
}

// DetectFormat tells the format of an image from its first bytes (head, at least 1 KiB when the
// file has them) and its last 512 bytes (tail: the VHD footer). Anything unrecognised is raw.
func DetectFormat(head, tail []byte) string {
	for _, m := range magics {
		if len(head) >= m.off+len(m.magic) && string(head[m.off:m.off+len(m.magic)]) == m.magic {
			return m.format
		}
	}
	// A fixed VHD has its footer only at the end.
	if len(tail) >= 512 && bytes.HasPrefix(tail[len(tail)-512:], []byte("conectix")) {
		return VPC
	}
	return Raw
}

// FormatForName is the format a file name claims by its extension, or "" if it claims none.
func FormatForName(name string) string {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".qcow2", ".qcow":
		return Qcow2
	case ".vmdk":
		return VMDK
	case ".vhd", ".vpc":
		return VPC
	case ".vhdx":
		return VHDX
	case ".vdi":
		return VDI
	case ".qed":
		return QED
	case ".ova":
		return OVA
	case ".raw", ".img", ".bin", ".iso":
		return Raw
	}
	return ""
}

// qcow2Header is the part of the qcow2 header whose offsets must lie inside the file.
type qcow2Header struct {
	ClusterBits       uint32
	Size              uint64
	L1Size            uint32
	L1Offset          uint64
	RefcountOffset    uint64
	RefcountClusters  uint32
	BackingFileOffset uint64
	BackingFileSize   uint32
}

func parseQcow2Header(h []byte) (qcow2Header, bool) {
	if len(h) < 72 || string(h[:4]) != "QFI\xfb" {
		return qcow2Header{}, false
	}
	be := binary.BigEndian
	return qcow2Header{
		BackingFileOffset: be.Uint64(h[8:]),
		BackingFileSize:   be.Uint32(h[16:]),
		ClusterBits:       be.Uint32(h[20:]),
		Size:              be.Uint64(h[24:]),
		L1Size:            be.Uint32(h[36:]),
		L1Offset:          be.Uint64(h[40:]),
		RefcountOffset:    be.Uint64(h[48:]),
		RefcountClusters:  be.Uint32(h[56:]),
	}, true
}

// qcow2Truncated reports whether the header points past the end of a file of fileSize bytes.
func qcow2Truncated(h qcow2Header, fileSize uint64) bool {
	if h.ClusterBits < 9 || h.ClusterBits > 21 {
		return true
	}
	l1End := h.L1Offset + uint64(h.L1Size)*8
	rcEnd := h.RefcountOffset + uint64(h.RefcountClusters)<<h.ClusterBits
	return l1End < h.L1Offset || rcEnd < h.RefcountOffset || l1End > fileSize || rcEnd > fileSize
}
