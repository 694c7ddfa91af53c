package api

import "time"

// Image kinds.
const (
	ImageAppliance = "appliance" // kernel + agent initramfs, static binaries only; boots in seconds
	ImageFull      = "full"      // Debian root disk (qcow2) with systemd and the agent service
)

// Image is a guest image in the daemon's image store (GET /1.0/images/{name}). Images are
// global: every project launches from the same store.
type Image struct {
	Name          string    `json:"name" yaml:"name"`
	ID            string    `json:"id" yaml:"id"` // sha256 over kind and file hashes
	Kind          string    `json:"kind" yaml:"kind"`
	KernelVersion string    `json:"kernel_version" yaml:"kernel_version"`
	Size          int64     `json:"size" yaml:"size"` // bytes of kernel, initramfs and disk
	Files         []string  `json:"files,omitempty" yaml:"files,omitempty"`
	CreatedAt     time.Time `json:"created_at" yaml:"created_at"`
	BuildSeconds  float64   `json:"build_seconds,omitempty" yaml:"build_seconds,omitempty"`
	// UsedBy names the instances ("project/name") launched from this image.
	UsedBy []string `json:"used_by,omitempty" yaml:"used_by,omitempty"`
}

// ImagesPost builds an image (POST /1.0/images); the answer is an operation.
type ImagesPost struct {
	Name string `json:"name"`
	Kind string `json:"kind,omitempty"` // appliance (default) | full
	// Binaries are absolute paths on the daemon host: static executables placed at /bin/<name>
	// (appliance) or /usr/local/bin/<name> (full).
	Binaries []string `json:"binaries,omitempty"`
	// KernelPackage is a directory on the daemon host holding an unpacked Debian kernel
	// package (boot/vmlinuz-*, lib/modules/) when it contains '/', else a Debian package name
	// (linux-image-cloud-amd64 or a linux-image-* package) the daemon fetches with apt into its
	// kernel-packages cache; default the daemon's kernel dir.
	KernelPackage string `json:"kernel_package,omitempty"`
	// Debootstrap is the Debian suite of a full image (default bookworm).
	Debootstrap string `json:"debootstrap,omitempty"`
	// Include are extra Debian packages of a full image.
	Include []string `json:"include,omitempty"`
	// DiskMB is the root filesystem size of a full image (default 2048).
	DiskMB int `json:"disk_mb,omitempty"`
}
