package instances

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/finvirt/finvirt/api"
	"github.com/finvirt/finvirt/internal/auth"
	"github.com/finvirt/finvirt/internal/daemon"
	"github.com/finvirt/finvirt/internal/image"
	"github.com/finvirt/finvirt/internal/store"
)

// Images are global objects: every authenticated identity reads them (a project operator
// must see what it can launch), only an administrator builds, imports or deletes them.
func (s *Subsystem) imageRoutes() []*daemon.Route {
	return []*daemon.Route{
		{Method: "GET", Path: "/1.0/images", Summary: "List images", Perm: auth.PermAuthenticated, Reply: []api.Image{}, Handler: s.handleImageList},
		{Method: "POST", Path: "/1.0/images", Summary: "Build an appliance or full image from host binaries (an operation)", Perm: auth.PermAdmin, Action: "image.build", Body: api.ImagesPost{}, Reply: api.Operation{}, Status: 202, Handler: s.handleImageBuild},
		{Method: "POST", Path: "/1.0/images/import", Summary: "Import an image archive (tar from export; verified, nothing kept on failure)", Perm: auth.PermAdmin, Action: "image.import", StreamBody: true, Reply: api.Image{}, Status: 201, Handler: s.handleImageImport},
		{Method: "GET", Path: "/1.0/images/{name}", Summary: "Show an image", Perm: auth.PermAuthenticated, Reply: api.Image{}, Handler: s.handleImageGet},
		{Method: "DELETE", Path: "/1.0/images/{name}", Summary: "Delete an image no instance uses", Perm: auth.PermAdmin, Target: daemon.PathTarget("image", "name"), Action: "image.delete", Handler: s.handleImageDelete},
		{Method: "GET", Path: "/1.0/images/{name}/export", Summary: "Export an image as a tar stream", Perm: auth.PermAuthenticated, Handler: s.handleImageExport},
	}
}

func (s *Subsystem) toAPIImage(ctx context.Context, im *image.Image) api.Image {
	out := api.Image{Name: im.Name, ID: im.ID, Kind: im.Kind, KernelVersion: im.KernelVersion, Size: im.Size(), CreatedAt: im.Created, BuildSeconds: im.BuildSeconds}
	for _, e := range im.Contents {
		if strings.HasPrefix(e.Path, "/bin/") && e.Size > 0 {
			out.Files = append(out.Files, e.Path)
		}
	}
	out.UsedBy, _ = s.imageUsers(ctx, im.Name)
	return out
}

// imageUsers names the instances ("project/name") launched from image name.
func (s *Subsystem) imageUsers(ctx context.Context, name string) ([]string, error) {
	recs, err := s.listRecords(ctx, "")
	if err != nil {
		return nil, err
	}
	var users []string
	for _, in := range recs {
		if in.Image == name {
			users = append(users, in.Project+"/"+in.Name)
		}
	}
	sort.Strings(users)
	return users, nil
}

func (s *Subsystem) getImage(name string) (*image.Image, error) {
	if err := image.ValidateName(name); err != nil {
		return nil, daemon.BadRequest("%v", err)
	}
	im, err := s.images.Get(name)
	if errors.Is(err, image.ErrNotFound) {
		return nil, daemon.NotFound("image %s not found: see 'finvirt image list' or build it with 'finvirt image build %s --binary PATH'", name, name)
	}
	return im, err
}

func (s *Subsystem) handleImageList(_ *daemon.Daemon, w http.ResponseWriter, r *http.Request, _ *daemon.Request) error {
	list, err := s.images.List()
	if err != nil {
		return err
	}
	out := []api.Image{}
	for _, im := range list {
		a := s.toAPIImage(r.Context(), im)
		a.Files = nil
		out = append(out, a)
	}
	return daemon.WriteJSON(w, http.StatusOK, out)
}

func (s *Subsystem) handleImageGet(_ *daemon.Daemon, w http.ResponseWriter, r *http.Request, _ *daemon.Request) error {
	im, err := s.getImage(r.PathValue("name"))
	if err != nil {
		return err
	}
	return daemon.WriteJSON(w, http.StatusOK, s.toAPIImage(r.Context(), im))
}

// validateBuild checks everything that can be checked before the (slow) build starts, so
// a typo is a 400 now rather than a failed operation later.
func (s *Subsystem) validateBuild(req *api.ImagesPost) error {
	if err := image.ValidateName(req.Name); err != nil {
		return daemon.BadRequest("%v", err)
	}
	switch req.Kind {
	case "":
		req.Kind = api.ImageAppliance
	case api.ImageAppliance, api.ImageFull:
	default:
		return daemon.BadRequest("image %s: kind %q is unknown: use appliance or full", req.Name, req.Kind)
	}
	if req.Kind == api.ImageAppliance && (req.Debootstrap != "" || len(req.Include) > 0 || req.DiskMB != 0) {
		return daemon.BadRequest("image %s: debootstrap, include and disk_mb are for full images: add kind=full (--debootstrap)", req.Name)
	}
	if req.Kind == api.ImageFull && req.Debootstrap == "" {
		req.Debootstrap = "bookworm"
	}
	if req.DiskMB < 0 || req.DiskMB > 1<<20 {
		return daemon.BadRequest("image %s: disk_mb %d is out of range (0 = 2048 default, most 1048576)", req.Name, req.DiskMB)
	}
	seen := map[string]bool{}
	for _, b := range req.Binaries {
		if !filepath.IsAbs(b) {
			return daemon.BadRequest("image %s: binary %q must be an absolute path on the daemon host", req.Name, b)
		}
		st, err := os.Stat(b)
		if err != nil {
			return daemon.BadRequest("image %s: binary %s: %v", req.Name, b, errors.Unwrap(err))
		}
		if !st.Mode().IsRegular() || st.Mode()&0o111 == 0 {
			return daemon.BadRequest("image %s: binary %s is not an executable file", req.Name, b)
		}
		if seen[filepath.Base(b)] {
			return daemon.BadRequest("image %s: two binaries are named %s (each goes to /bin/<name>)", req.Name, filepath.Base(b))
		}
		seen[filepath.Base(b)] = true
	}
	if req.KernelPackage != "" && image.IsKernelPackageDir(req.KernelPackage) {
		if _, err := image.FindKernel(req.KernelPackage); err != nil {
			return daemon.BadRequest("image %s: kernel_package: %v", req.Name, err)
		}
	}
	for _, p := range req.Include {
		if p == "" || strings.ContainsAny(p, " ,;'\"`$") {
			return daemon.BadRequest("image %s: include %q is not a Debian package name", req.Name, p)
		}
	}
	if _, err := s.images.Get(req.Name); err == nil {
		return daemon.Conflict("image %s already exists: delete it first ('finvirt image delete %s') or choose another name", req.Name, req.Name)
	}
	return nil
}

func (s *Subsystem) handleImageBuild(d *daemon.Daemon, w http.ResponseWriter, r *http.Request, rq *daemon.Request) error {
	var req api.ImagesPost
	if err := daemon.DecodeJSON(rq.Body(), &req); err != nil {
		return err
	}
	rq.SetTarget("image/" + req.Name)
	if err := s.validateBuild(&req); err != nil {
		return err
	}
	// A package name (no '/') is resolved now, so a wrong name is a 400; the download and
	// unpack run in the operation.
	var kpkg *image.KernelPackage
	if req.KernelPackage != "" && !image.IsKernelPackageDir(req.KernelPackage) {
		kp, err := image.ResolveKernelPackage(r.Context(), req.KernelPackage)
		if err != nil {
			return daemon.BadRequest("image %s: kernel_package: %v", req.Name, err)
		}
		kpkg = &kp
	}
	agentBin, err := agentBinary()
	if err != nil {
		return daemon.Errorf(http.StatusInternalServerError, "%v", err)
	}
	key := "image/" + req.Name
	if !s.acquire(key, "build") {
		return daemon.Conflict("image %s is already being built", req.Name)
	}
	if err := d.Commit(r.Context(), r, rq, http.StatusAccepted, func(store.Tx) error { return nil }); err != nil {
		s.release(key)
		return err
	}
	op := s.startOp("Building "+req.Kind+" image "+req.Name, "", map[string]string{"images": "/1.0/images/" + req.Name}, func(ctx context.Context, progress daemon.ProgressFunc) error {
		defer s.release(key)
		var err error
		if kpkg != nil {
			progress(0, "fetching kernel package "+kpkg.Package+" "+kpkg.Version)
			if req.KernelPackage, err = image.FetchKernelPackage(ctx, filepath.Join(s.images.Dir(), "kernel-packages"), *kpkg); err != nil {
				s.d.AuditEvent(context.Background(), "image.build-failed", "image/"+req.Name, "", api.OutcomeFailed, err.Error())
				return fmt.Errorf("build image %s: %w", req.Name, err)
			}
		}
		if req.Kind == api.ImageFull {
			_, err = s.images.BuildFull(ctx, req.Name, image.FullSpec{Agent: agentBin, KernelDir: req.KernelPackage, Suite: req.Debootstrap, Include: req.Include, DiskMB: req.DiskMB, Binaries: req.Binaries}, image.Progress(progress))
		} else {
			_, err = s.images.BuildAppliance(ctx, req.Name, image.ApplianceSpec{Agent: agentBin, Binaries: req.Binaries, KernelDir: req.KernelPackage}, image.Progress(progress))
		}
		if err != nil {
			s.d.AuditEvent(context.Background(), "image.build-failed", "image/"+req.Name, "", api.OutcomeFailed, err.Error())
			return fmt.Errorf("build image %s: %w", req.Name, err)
		}
		s.d.Publish(lifecycleEvent("image-created", "", "/1.0/images/"+req.Name, nil))
		return nil
	})
	w.Header().Set("Location", "/1.0/operations/"+op.ID)
	return daemon.WriteJSON(w, http.StatusAccepted, op)
}

func (s *Subsystem) handleImageDelete(d *daemon.Daemon, w http.ResponseWriter, r *http.Request, rq *daemon.Request) error {
	name := r.PathValue("name")
	if _, err := s.getImage(name); err != nil {
		return err
	}
	// Launches hold imageMu shared from the image lookup until their record exists, so no
	// instance can appear between this check and the removal.
	s.imageMu.Lock()
	defer s.imageMu.Unlock()
	users, err := s.imageUsers(r.Context(), name)
	if err != nil {
		return err
	}
	if len(users) > 0 {
		return daemon.Conflict("image %s is used by instances %s: delete them first", name, strings.Join(users, ", "))
	}
	if err := s.images.Delete(name); err != nil {
		return err
	}
	if err := d.Commit(r.Context(), r, rq, http.StatusOK, func(store.Tx) error { return nil }); err != nil {
		return err
	}
	d.Lifecycle(rq, "image-deleted", "", "/1.0/images/"+name)
	return daemon.WriteJSON(w, http.StatusOK, map[string]string{"deleted": name})
}

func (s *Subsystem) handleImageExport(_ *daemon.Daemon, w http.ResponseWriter, r *http.Request, _ *daemon.Request) error {
	im, err := s.getImage(r.PathValue("name"))
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/x-tar")
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", im.Name+".tar"))
	if err := s.images.Export(im.Name, w); err != nil {
		// Headers are gone: abort the connection so the client sees a truncated stream, never
		// a complete-looking archive.
		s.log.Error("image export failed", "image", im.Name, "err", err)
		panic(http.ErrAbortHandler)
	}
	return nil
}

func (s *Subsystem) handleImageImport(d *daemon.Daemon, w http.ResponseWriter, r *http.Request, rq *daemon.Request) error {
	im, err := s.images.Import(http.MaxBytesReader(w, r.Body, 64<<30))
	if err != nil {
		if strings.Contains(err.Error(), "already exists") {
			return daemon.Conflict("%v", err)
		}
		return daemon.BadRequest("%v", err)
	}
	rq.SetTarget("image/" + im.Name)
	if err := d.Commit(r.Context(), r, rq, http.StatusCreated, func(store.Tx) error { return nil }); err != nil {
		s.images.Delete(im.Name)
		return err
	}
	d.Lifecycle(rq, "image-created", "", "/1.0/images/"+im.Name)
	return daemon.WriteJSON(w, http.StatusCreated, s.toAPIImage(r.Context(), im))
}
