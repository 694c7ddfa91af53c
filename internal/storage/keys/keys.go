// Package keys holds the two-level key hierarchy of encrypted volumes: a host master key in a
// 0600 file (never in the state database) wraps a random 32-byte key per volume with AES-256-GCM.
// The wrapped key is stored next to the volume's metadata; without the master key file it is
// useless, and the LUKS header on the volume protects the data key with that volume key.
package keys

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// KeySize is the size of master and volume keys (AES-256).
const KeySize = 32

// ErrWrongMasterKey: a wrapped key was made with another master key.
var ErrWrongMasterKey = errors.New("wrong master key")

// ErrCorrupt: a wrapped key or master key file is malformed or was tampered with.
var ErrCorrupt = errors.New("corrupt key material")

// Master is a loaded host master key.
type Master struct {
	path string
	key  []byte
	id   string // public fingerprint, stored with each wrapped key
}

// ID is the master key's public fingerprint (HMAC-SHA256 of a fixed label, 8 bytes hex). It is
// stored with wrapped keys so that a wrong master key is told apart from corrupt data.
func (m *Master) ID() string { return m.id }

// Path is the file the key was loaded from.
func (m *Master) Path() string { return m.path }

var (
	cacheMu sync.Mutex
	cache   = map[string]*Master{}
)

// LoadOrCreate loads the master key at path, creating it (32 random bytes, hex, mode 0600, in a
// 0700 directory) on first use. A file readable by group or others is refused: the key would
// no longer protect anything.
func LoadOrCreate(path string) (*Master, error) {
	if path == "" {
		return nil, fmt.Errorf("master key path is empty: set PoolConfig.MasterKeyFile")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	cacheMu.Lock()
	defer cacheMu.Unlock()
	if m, ok := cache[abs]; ok {
		return m, nil
	}
	m, err := load(abs)
	if errors.Is(err, os.ErrNotExist) {
		m, err = create(abs)
	}
	if err != nil {
		return nil, err
	}
	cache[abs] = m
	return m, nil
}

// Load loads an existing master key without creating one.
func Load(path string) (*Master, error) { return load(path) }

func load(path string) (*Master, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("master key %s has mode %o: %w; run chmod 600 %s", path, st.Mode().Perm(), ErrCorrupt, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(key) != KeySize {
		return nil, fmt.Errorf("master key %s is not %d hex-encoded bytes: %w", path, KeySize, ErrCorrupt)
	}
	return newMaster(path, key), nil
}

func create(path string) (*Master, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	// O_EXCL: two processes racing to create it must not end up with different keys.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return load(path)
	}
	if err != nil {
		return nil, err
	}
	if _, err := f.WriteString(hex.EncodeToString(key) + "\n"); err != nil {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	return newMaster(path, key), nil
}

// FromBytes builds a master key from raw bytes (tests, or a key fetched from an HSM/KMS).
func FromBytes(key []byte) (*Master, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("master key must be %d bytes, got %d: %w", KeySize, len(key), ErrCorrupt)
	}
	return newMaster("", append([]byte(nil), key...)), nil
}

func newMaster(path string, key []byte) *Master {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("finvirt master key id v1"))
	return &Master{path: path, key: key, id: hex.EncodeToString(mac.Sum(nil)[:8])}
}

// NewVolumeKey returns a fresh random volume key.
func NewVolumeKey() []byte {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		panic(err)
	}
	return k
}

const wrapVersion = "fvk1"

// Wrap seals a volume key. aad binds it to its owner (pool/volume id): a wrapped key copied to
// another volume's metadata does not unwrap there. Format: fvk1:<master id>:<base64 nonce|ct>.
func (m *Master) Wrap(volumeKey []byte, aad string) (string, error) {
	gcm, err := m.gcm()
	if err != nil {
		return "", err
	}
	nonce := make([]byte, gcm.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	ct := gcm.Seal(nonce, nonce, volumeKey, []byte(aad))
	return wrapVersion + ":" + m.id + ":" + base64.StdEncoding.EncodeToString(ct), nil
}

// Unwrap opens a wrapped key. It fails with ErrWrongMasterKey when the key was wrapped by a
// different master key, and ErrCorrupt when the data or its binding (aad) does not match.
func (m *Master) Unwrap(wrapped, aad string) ([]byte, error) {
	parts := strings.Split(wrapped, ":")
	if len(parts) != 3 || parts[0] != wrapVersion {
		return nil, fmt.Errorf("wrapped key is not in %s format: %w", wrapVersion, ErrCorrupt)
	}
	if parts[1] != m.id {
		return nil, fmt.Errorf("volume key was wrapped by master key %s but the loaded master key (%s) is %s: %w; point MasterKeyFile at the original key",
			parts[1], m.path, m.id, ErrWrongMasterKey)
	}
	raw, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil {
		return nil, fmt.Errorf("wrapped key: %w", ErrCorrupt)
	}
	gcm, err := m.gcm()
	if err != nil {
		return nil, err
	}
	if len(raw) < gcm.NonceSize()+gcm.Overhead() {
		return nil, fmt.Errorf("wrapped key too short: %w", ErrCorrupt)
	}
	key, err := gcm.Open(nil, raw[:gcm.NonceSize()], raw[gcm.NonceSize():], []byte(aad))
	if err != nil {
		return nil, fmt.Errorf("wrapped key for %q fails authentication: %w", aad, ErrCorrupt)
	}
	return key, nil
}

func (m *Master) gcm() (cipher.AEAD, error) {
	block, err := aes.NewCipher(m.key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
