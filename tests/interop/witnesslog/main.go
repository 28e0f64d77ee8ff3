// Command witnesslog plays the log side of C2SP tlog-witness with an independent
// implementation, golang.org/x/mod/sumdb/{note,tlog}, for tests/test_witness_interop.py:
// our witness must accept the checkpoints and consistency proofs it makes, and it checks
// the cosigned checkpoints our witness serves.
//
// It builds offline in GOPATH mode against Debian's golang-golang-x-mod-dev (see
// .ci/install-go-interop):
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o witnesslog main.go
//
// Usage:
//
//	witnesslog requests DIR ORIGIN SIZE...
//	    build a tree of max(SIZE) records with tlog, sign a checkpoint (origin, size,
//	    base64 root) with a note key named ORIGIN (made deterministically from ORIGIN),
//	    and write DIR/request-<i> for each SIZE: the add-checkpoint body from the
//	    previous SIZE (0 first) with tlog.ProveTree's consistency proof. Prints the
//	    log's vkey.
//	witnesslog cosigned FILE LOGVKEY WITNESSNAME WITNESSPUBHEX
//	    open the signed note in FILE with note.Open, trusting the log's vkey and the
//	    witness's Ed25519 cosignature/v1 key (a note.Verifier written here from
//	    C2SP tlog-cosignature); both signatures must verify. Prints "ok <time>".
package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "witnesslog: "+format+"\n", args...)
	os.Exit(1)
}

type memHashes []tlog.Hash

func (m memHashes) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(m)) {
			return nil, fmt.Errorf("no stored hash %d", x)
		}
		out[i] = m[x]
	}
	return out, nil
}

func requests(dir, origin string, sizes []int64) {
	var max int64
	for _, s := range sizes {
		if s > max {
			max = s
		}
	}
	var stored memHashes
	for i := int64(0); i < max; i++ {
		hs, err := tlog.StoredHashes(i, []byte(fmt.Sprintf("go record %d", i)), stored)
		if err != nil {
			fail("StoredHashes: %v", err)
		}
		stored = append(stored, hs...)
	}
	seed := sha256.Sum256([]byte(origin))
	skey, vkey, err := note.GenerateKey(bytes.NewReader(seed[:]), origin)
	if err != nil {
		fail("GenerateKey: %v", err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		fail("NewSigner: %v", err)
	}
	var old int64
	for i, size := range sizes {
		root, err := tlog.TreeHash(size, stored)
		if err != nil {
			fail("TreeHash: %v", err)
		}
		text := fmt.Sprintf("%s\n%d\n%s\n", origin, size, base64.StdEncoding.EncodeToString(root[:]))
		signed, err := note.Sign(&note.Note{Text: text}, signer)
		if err != nil {
			fail("Sign: %v", err)
		}
		var body bytes.Buffer
		fmt.Fprintf(&body, "old %d\n", old)
		if old > 0 && old < size {
			proof, err := tlog.ProveTree(size, old, stored)
			if err != nil {
				fail("ProveTree: %v", err)
			}
			for _, h := range proof {
				body.WriteString(base64.StdEncoding.EncodeToString(h[:]) + "\n")
			}
		}
		body.WriteString("\n")
		body.Write(signed)
		name := filepath.Join(dir, fmt.Sprintf("request-%d", i))
		if err := os.WriteFile(name, body.Bytes(), 0o644); err != nil {
			fail("write: %v", err)
		}
		old = size
	}
	fmt.Println(vkey)
}

// cosigVerifier verifies C2SP tlog-cosignature/v1 Ed25519 cosignatures (type 0x04).
type cosigVerifier struct {
	name string
	pub  ed25519.PublicKey
	hash uint32
	time uint64
}

func (v *cosigVerifier) Name() string    { return v.name }
func (v *cosigVerifier) KeyHash() uint32 { return v.hash }
func (v *cosigVerifier) Verify(msg, sig []byte) bool {
	if len(sig) != 8+ed25519.SignatureSize {
		return false
	}
	t := binary.BigEndian.Uint64(sig[:8])
	if t > 1<<63-1 {
		return false
	}
	m := []byte("cosignature/v1\ntime " + strconv.FormatUint(t, 10) + "\n")
	m = append(m, msg...)
	if !ed25519.Verify(v.pub, m, sig[8:]) {
		return false
	}
	v.time = t
	return true
}

func cosigned(file, logVkey, witnessName, witnessPubHex string) {
	data, err := os.ReadFile(file)
	if err != nil {
		fail("read: %v", err)
	}
	logV, err := note.NewVerifier(logVkey)
	if err != nil {
		fail("log vkey: %v", err)
	}
	pub, err := hex.DecodeString(witnessPubHex)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		fail("witness public key: %v", err)
	}
	h := sha256.Sum256(append(append([]byte(witnessName+"\n"), 0x04), pub...))
	wv := &cosigVerifier{name: witnessName, pub: pub, hash: binary.BigEndian.Uint32(h[:4])}
	n, err := note.Open(data, note.VerifierList(logV, wv))
	if err != nil {
		fail("note.Open: %v", err)
	}
	if len(n.Sigs) != 2 {
		fail("want the log's signature and the cosignature verified, got %d", len(n.Sigs))
	}
	fmt.Printf("ok %d\n", wv.time)
}

func main() {
	if len(os.Args) < 2 {
		fail("usage: witnesslog requests|cosigned ...")
	}
	switch os.Args[1] {
	case "requests":
		if len(os.Args) < 5 {
			fail("usage: witnesslog requests DIR ORIGIN SIZE...")
		}
		var sizes []int64
		for _, a := range os.Args[4:] {
			s, err := strconv.ParseInt(a, 10, 64)
			if err != nil {
				fail("size %q: %v", a, err)
			}
			sizes = append(sizes, s)
		}
		requests(os.Args[2], os.Args[3], sizes)
	case "cosigned":
		if len(os.Args) != 6 {
			fail("usage: witnesslog cosigned FILE LOGVKEY WITNESSNAME WITNESSPUBHEX")
		}
		cosigned(os.Args[2], os.Args[3], os.Args[4], os.Args[5])
	default:
		fail("unknown command %q", os.Args[1])
	}
}
