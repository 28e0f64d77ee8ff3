// Command gocheck checks the ledger's published artifacts with an independent
// implementation: golang.org/x/mod/sumdb/note and golang.org/x/mod/sumdb/tlog.
//
// It is driven by tests/test_interop_go.py and builds offline in GOPATH mode
// against Debian's golang-golang-x-mod-dev (see .ci/install-go-interop):
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o gocheck main.go
//
// Usage:
//
//	gocheck vkey NAME PUBHEX
//	    print note.NewEd25519VerifierKey(NAME, PUB)
//	gocheck sign TEXTFILE OUTFILE NAME...
//	    generate one Ed25519 key per NAME (deterministically, from NAME),
//	    sign the note text in TEXTFILE with all of them into OUTFILE, and
//	    print each key's vkey on its own line
//	gocheck check DIR
//	    run every check described by DIR/manifest.json, printing one line per
//	    check ("ok ..." or "FAIL ..."); exit status 1 if any check failed
//
// Where x/mod does not cover our format the checker parses by hand and says so
// in its output: tlog.ParseTree only accepts the go.sum first line
// "go.sum database tree", x/mod has no tlog-proof receipt parser, no
// cosignature (alg 0x04) verifier, and x/mod tile paths carry the tile height
// (tile/8/L/N) where C2SP tlog-tiles paths do not (tile/L/N).
package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// tileHeight is the C2SP tlog-tiles height: 2^8 = 256 hashes per full tile.
const tileHeight = 8

// Manifest is what the Python test writes: our keys, leaves, roots, proofs,
// tiles and receipts. Proof hashes and leaf data travel as JSON base64 ([]byte);
// the artifacts under test (notes, receipts, tiles) travel as files, byte for byte.
type Manifest struct {
	Log         Key            `json:"log"`
	Witnesses   []Key          `json:"witnesses"`
	Checkpoints []string       `json:"checkpoints"` // files: our signed checkpoints
	Leaves      [][]byte       `json:"leaves"`
	Stored      StoredDigest   `json:"stored_hashes"`
	Roots       []SizeRoot     `json:"roots"`
	Inclusion   []InclusionP   `json:"inclusion"`
	Consistency []ConsistencyP `json:"consistency"`
	Tiles       []TileSet      `json:"tiles"`
	Receipts    []ReceiptRef   `json:"receipts"`
}

type Key struct {
	Name      string `json:"name"`
	PublicKey string `json:"public_key"` // hex
	Vkey      string `json:"vkey"`       // our encoding
}

// StoredDigest summarises our whole stored-hash array (every hash of the tree
// of all the leaves, in stored hash index order) without shipping it.
type StoredDigest struct {
	Count  int64  `json:"count"`
	SHA256 []byte `json:"sha256"` // SHA-256 of the hashes concatenated
}

type SizeRoot struct {
	Size int64  `json:"size"`
	Root []byte `json:"root"`
}

type InclusionP struct {
	Index int64    `json:"index"`
	Size  int64    `json:"size"`
	Proof [][]byte `json:"proof"`
}

type ConsistencyP struct {
	Old   int64    `json:"old"`
	New   int64    `json:"new"`
	Proof [][]byte `json:"proof"`
}

type TileSet struct {
	Size  int64    `json:"size"`
	Dir   string   `json:"dir"`   // tiles live at Dir/<our tile path>
	Paths []string `json:"paths"` // our tiles_for_size(Size), as paths
}

type ReceiptRef struct {
	File  string `json:"file"`
	Index int64  `json:"index"` // the entry the receipt is for
}

type checker struct {
	failed int
	passed int
}

func (c *checker) ok(format string, args ...any) {
	c.passed++
	fmt.Printf("ok   "+format+"\n", args...)
}

func (c *checker) fail(format string, args ...any) {
	c.failed++
	fmt.Printf("FAIL "+format+"\n", args...)
}

// check records err as a failure of the named check, or a pass when nil.
func (c *checker) check(err error, format string, args ...any) {
	what := fmt.Sprintf(format, args...)
	if err != nil {
		c.fail("%s: %v", what, err)
		return
	}
	c.ok("%s", what)
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	switch os.Args[1] {
	case "vkey":
		if len(os.Args) != 4 {
			usage()
		}
		vkey, err := goVkey(os.Args[2], os.Args[3])
		if err != nil {
			fatal(err)
		}
		fmt.Println(vkey)
	case "sign":
		if len(os.Args) < 5 {
			usage()
		}
		if err := signCmd(os.Args[2], os.Args[3], os.Args[4:]); err != nil {
			fatal(err)
		}
	case "check":
		if len(os.Args) != 3 {
			usage()
		}
		c := &checker{}
		if err := runChecks(c, os.Args[2]); err != nil {
			c.fail("manifest: %v", err)
		}
		fmt.Printf("gocheck: %d passed, %d failed\n", c.passed, c.failed)
		if c.failed > 0 {
			os.Exit(1)
		}
	default:
		usage()
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: gocheck vkey NAME PUBHEX | sign TEXTFILE OUTFILE NAME... | check DIR")
	os.Exit(2)
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "gocheck:", err)
	os.Exit(1)
}

func goVkey(name, pubHex string) (string, error) {
	pub, err := hex.DecodeString(pubHex)
	if err != nil {
		return "", fmt.Errorf("public key hex: %w", err)
	}
	return note.NewEd25519VerifierKey(name, ed25519.PublicKey(pub))
}

// seedReader is a deterministic byte stream (SHA-256 in counter mode), so that
// the keys Go generates are the same on every run.
type seedReader struct {
	seed    []byte
	counter uint64
	buf     []byte
}

func (r *seedReader) Read(p []byte) (int, error) {
	for len(r.buf) < len(p) {
		var ctr [8]byte
		binary.BigEndian.PutUint64(ctr[:], r.counter)
		r.counter++
		block := sha256.Sum256(append(append([]byte{}, r.seed...), ctr[:]...))
		r.buf = append(r.buf, block[:]...)
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

func signCmd(textFile, outFile string, names []string) error {
	text, err := os.ReadFile(textFile)
	if err != nil {
		return err
	}
	var signers []note.Signer
	for _, name := range names {
		skey, vkey, err := note.GenerateKey(&seedReader{seed: []byte("gocheck " + name)}, name)
		if err != nil {
			return err
		}
		s, err := note.NewSigner(skey)
		if err != nil {
			return err
		}
		signers = append(signers, s)
		fmt.Println(vkey)
	}
	msg, err := note.Sign(&note.Note{Text: string(text)}, signers...)
	if err != nil {
		return err
	}
	return os.WriteFile(outFile, msg, 0o644)
}

// memStore is a tlog.HashReader over hashes Go computed itself with
// tlog.StoredHashes: nothing in it comes from our implementation.
type memStore []tlog.Hash

func (s *memStore) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(*s)) {
			return nil, fmt.Errorf("stored hash index %d out of range (have %d)", x, len(*s))
		}
		out[i] = (*s)[x]
	}
	return out, nil
}

func toHash(b []byte) (tlog.Hash, error) {
	var h tlog.Hash
	if len(b) != tlog.HashSize {
		return h, fmt.Errorf("hash of %d bytes, want %d", len(b), tlog.HashSize)
	}
	copy(h[:], b)
	return h, nil
}

func toHashes(bs [][]byte) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(bs))
	for i, b := range bs {
		h, err := toHash(b)
		if err != nil {
			return nil, fmt.Errorf("proof hash %d: %w", i, err)
		}
		out[i] = h
	}
	return out, nil
}

func runChecks(c *checker, dir string) error {
	raw, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		return err
	}
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return err
	}

	logVerifier := checkKeys(c, &m)

	// Go's own tree over our leaf data.
	store := &memStore{}
	for i, data := range m.Leaves {
		hashes, err := tlog.StoredHashes(int64(i), data, store)
		if err != nil {
			return fmt.Errorf("StoredHashes(%d): %w", i, err)
		}
		*store = append(*store, hashes...)
	}
	checkStored(c, &m, store)
	roots := checkRoots(c, &m, store)

	for _, file := range m.Checkpoints {
		msg, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			return err
		}
		if logVerifier != nil {
			checkCheckpointNote(c, &m, file, msg, logVerifier, roots)
		}
	}
	checkInclusion(c, &m, store, roots)
	checkConsistency(c, &m, store, roots)
	for _, ts := range m.Tiles {
		checkTiles(c, dir, ts, store, roots)
	}
	for _, r := range m.Receipts {
		checkReceipt(c, dir, &m, r, logVerifier)
	}
	return nil
}

// checkKeys compares our vkeys with Go's and returns Go's verifier for the log key.
func checkKeys(c *checker, m *Manifest) note.Verifier {
	govkey, err := goVkey(m.Log.Name, m.Log.PublicKey)
	if err != nil {
		c.fail("vkey: NewEd25519VerifierKey(%q): %v", m.Log.Name, err)
		return nil
	}
	fmt.Printf("govkey %s %s\n", m.Log.Name, govkey)
	if govkey != m.Log.Vkey {
		c.fail("vkey: ours %q != Go's NewEd25519VerifierKey %q", m.Log.Vkey, govkey)
	} else {
		c.ok("vkey: ours equals Go's NewEd25519VerifierKey for %s", m.Log.Name)
	}
	v, err := note.NewVerifier(m.Log.Vkey)
	if err != nil {
		c.fail("vkey: note.NewVerifier(ours %q): %v", m.Log.Vkey, err)
		return nil
	}
	c.ok("vkey: note.NewVerifier accepts ours (name %s, key hash %08x)", v.Name(), v.KeyHash())
	for _, w := range m.Witnesses {
		_, _, err := parseCosignerVkey(w.Vkey, w.Name, w.PublicKey)
		c.check(err, "cosigner vkey (parsed by hand, alg 0x04): %s", w.Name)
	}
	return v
}

func checkStored(c *checker, m *Manifest, store *memStore) {
	want := tlog.StoredHashCount(int64(len(m.Leaves)))
	if m.Stored.Count != want || int64(len(*store)) != want {
		c.fail("stored hashes: our count %d, Go's StoredHashCount(%d) %d", m.Stored.Count, len(m.Leaves), want)
		return
	}
	h := sha256.New()
	for _, x := range *store {
		h.Write(x[:])
	}
	if !bytes.Equal(h.Sum(nil), m.Stored.SHA256) {
		c.fail("stored hashes: our %d stored hashes differ from those tlog.StoredHashes computed", want)
		return
	}
	c.ok("stored hashes: our %d stored hashes for %d leaves equal tlog.StoredHashes, in StoredHashIndex order",
		want, len(m.Leaves))
}

func checkRoots(c *checker, m *Manifest, store *memStore) map[int64]tlog.Hash {
	roots := make(map[int64]tlog.Hash)
	bad := 0
	for _, sr := range m.Roots {
		goRoot, err := tlog.TreeHash(sr.Size, store)
		if err != nil {
			c.fail("root: TreeHash(%d): %v", sr.Size, err)
			bad++
			continue
		}
		ours, err := toHash(sr.Root)
		if err != nil || ours != goRoot {
			c.fail("root: size %d: ours %x, Go's TreeHash %x", sr.Size, sr.Root, goRoot[:])
			bad++
			continue
		}
		roots[sr.Size] = goRoot
	}
	if len(m.Roots) > 0 && bad == 0 {
		c.ok("root: %d tree sizes (1..%d): our roots equal Go's tlog.TreeHash over leaves Go hashed itself",
			len(m.Roots), m.Roots[len(m.Roots)-1].Size)
	}
	return roots
}

// parseCheckpointText parses a C2SP tlog-checkpoint body by hand (tlog.ParseTree
// wants the go.sum first line instead of an origin), then runs tlog.ParseTree on
// the same body with its origin line replaced, so Go's own strict parser judges
// the size and hash lines. Both must agree.
func parseCheckpointText(text string) (origin string, tree tlog.Tree, err error) {
	if !strings.HasSuffix(text, "\n") {
		return "", tree, errors.New("checkpoint text does not end in a newline")
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) < 3 {
		return "", tree, fmt.Errorf("checkpoint has %d lines, want at least 3", len(lines))
	}
	origin = lines[0]
	if origin == "" {
		return "", tree, errors.New("empty origin line")
	}
	n, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != lines[1] {
		return "", tree, fmt.Errorf("size line %q is not canonical decimal", lines[1])
	}
	h, err := base64.StdEncoding.Strict().DecodeString(lines[2])
	if err != nil || len(h) != tlog.HashSize || base64.StdEncoding.EncodeToString(h) != lines[2] {
		return "", tree, fmt.Errorf("hash line %q is not canonical base64 of 32 bytes", lines[2])
	}
	hash, _ := toHash(h)
	tree = tlog.Tree{N: n, Hash: hash}

	sumdbText := "go.sum database tree\n" + strings.SplitN(text, "\n", 2)[1]
	goTree, err := tlog.ParseTree([]byte(sumdbText))
	if err != nil {
		return "", tree, fmt.Errorf("tlog.ParseTree on the size and hash lines: %w", err)
	}
	if goTree != tree {
		return "", tree, fmt.Errorf("tlog.ParseTree read %d %x, by hand %d %x", goTree.N, goTree.Hash[:], n, h)
	}
	return origin, tree, nil
}

func checkCheckpointNote(c *checker, m *Manifest, label string, msg []byte, v note.Verifier, roots map[int64]tlog.Hash) {
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		c.fail("checkpoint %s: note.Open with our log vkey: %v", label, err)
		return
	}
	c.ok("checkpoint %s: note.Open verifies our log signature (%d verified, %d other signatures)",
		label, len(n.Sigs), len(n.UnverifiedSigs))
	origin, tree, err := parseCheckpointText(n.Text)
	if err != nil {
		c.fail("checkpoint %s: %v", label, err)
		return
	}
	c.ok("checkpoint %s: parsed by hand and by tlog.ParseTree (origin line swapped): %s size %d",
		label, origin, tree.N)
	if origin != m.Log.Name {
		c.fail("checkpoint %s: origin %q != log key name %q", label, origin, m.Log.Name)
	}
	if want, ok := roots[tree.N]; ok {
		if want != tree.Hash {
			c.fail("checkpoint %s: root %x != Go's TreeHash(%d) %x", label, tree.Hash[:], tree.N, want[:])
		} else {
			c.ok("checkpoint %s: root equals Go's TreeHash(%d)", label, tree.N)
		}
	} else {
		c.fail("checkpoint %s: no root for size %d in the manifest", label, tree.N)
	}
	for _, w := range m.Witnesses {
		c.check(checkCosignature(msg, n.Text, w), "checkpoint %s: cosignature by %s (crypto/ed25519 by hand)", label, w.Name)
	}
}

// parseCosignerVkey parses a tlog-cosignature vkey (signature type 0x04) by
// hand: x/mod's note.NewVerifier only knows type 0x01.
func parseCosignerVkey(vkey, name, pubHex string) (keyID uint32, pub ed25519.PublicKey, err error) {
	parts := strings.SplitN(vkey, "+", 3) // base64 may contain "+"
	if len(parts) != 3 || parts[0] != name || len(parts[1]) != 8 {
		return 0, nil, fmt.Errorf("vkey %q is not <name>+<8 hex>+<base64>", vkey)
	}
	id, err := strconv.ParseUint(parts[1], 16, 32)
	if err != nil || fmt.Sprintf("%08x", id) != parts[1] {
		return 0, nil, fmt.Errorf("key ID %q is not 8 lowercase hex digits", parts[1])
	}
	key, err := base64.StdEncoding.Strict().DecodeString(parts[2])
	if err != nil || len(key) != 1+ed25519.PublicKeySize || key[0] != 0x04 {
		return 0, nil, fmt.Errorf("key %q is not base64(0x04 || 32-byte key)", parts[2])
	}
	sum := sha256.Sum256(append([]byte(name+"\n"), key...))
	if want := binary.BigEndian.Uint32(sum[:4]); uint32(id) != want {
		return 0, nil, fmt.Errorf("key ID %08x, want SHA-256(name\\n 0x04 key)[:4] = %08x", id, want)
	}
	if hex.EncodeToString(key[1:]) != pubHex {
		return 0, nil, fmt.Errorf("public key %x != manifest %s", key[1:], pubHex)
	}
	// Go must not mistake it for a note signing key.
	if _, err := note.NewVerifier(vkey); err == nil {
		return 0, nil, errors.New("note.NewVerifier accepted a type 0x04 key as a note verifier")
	}
	return uint32(id), ed25519.PublicKey(key[1:]), nil
}

// checkCosignature finds w's signature line in the note and verifies it as a
// C2SP tlog-cosignature/v1 Ed25519 cosignature over text.
func checkCosignature(msg []byte, text string, w Key) error {
	keyID, pub, err := parseCosignerVkey(w.Vkey, w.Name, w.PublicKey)
	if err != nil {
		return err
	}
	sigBlock := strings.TrimPrefix(string(msg), text+"\n")
	found := 0
	for _, line := range strings.Split(strings.TrimSuffix(sigBlock, "\n"), "\n") {
		prefix := "— " + w.Name + " "
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		rest := line[len(prefix):]
		sig, err := base64.StdEncoding.Strict().DecodeString(rest)
		if err != nil || len(sig) < 4 || binary.BigEndian.Uint32(sig) != keyID {
			continue // another key of the same name
		}
		if len(sig) != 4+8+ed25519.SignatureSize {
			return fmt.Errorf("cosignature of %d bytes, want 4+8+64", len(sig))
		}
		ts := binary.BigEndian.Uint64(sig[4:12])
		if ts > 1<<63-1 {
			return fmt.Errorf("timestamp %d exceeds 2^63-1", ts)
		}
		signed := fmt.Sprintf("cosignature/v1\ntime %d\n%s", ts, text)
		if !ed25519.Verify(pub, []byte(signed), sig[12:]) {
			return fmt.Errorf("Ed25519 signature over cosignature/v1 message (time %d) does not verify", ts)
		}
		found++
	}
	if found == 0 {
		return fmt.Errorf("no signature line from %s with key ID %08x", w.Name, keyID)
	}
	return nil
}

func checkInclusion(c *checker, m *Manifest, store *memStore, roots map[int64]tlog.Hash) {
	bad := 0
	for _, ip := range m.Inclusion {
		what := fmt.Sprintf("inclusion (index %d, size %d)", ip.Index, ip.Size)
		if err := inclusionOne(ip, m.Leaves, store, roots); err != nil {
			c.fail("%s: %v", what, err)
			bad++
		}
	}
	if len(m.Inclusion) > 0 && bad == 0 {
		c.ok("inclusion: %d of our proofs pass tlog.CheckRecord, equal tlog.ProveRecord, and fail when tampered",
			len(m.Inclusion))
	}
}

func inclusionOne(ip InclusionP, leaves [][]byte, store *memStore, roots map[int64]tlog.Hash) error {
	root, ok := roots[ip.Size]
	if !ok {
		return errors.New("no verified root for that size")
	}
	if ip.Index < 0 || ip.Index >= int64(len(leaves)) {
		return errors.New("index outside the leaves")
	}
	proof, err := toHashes(ip.Proof)
	if err != nil {
		return err
	}
	leaf := tlog.RecordHash(leaves[ip.Index])
	if err := tlog.CheckRecord(proof, ip.Size, root, ip.Index, leaf); err != nil {
		return fmt.Errorf("tlog.CheckRecord rejects our proof: %w", err)
	}
	goProof, err := tlog.ProveRecord(ip.Size, ip.Index, store)
	if err != nil {
		return err
	}
	if !equalHashes(proof, goProof) {
		return fmt.Errorf("our proof (%d hashes) != tlog.ProveRecord (%d hashes)", len(proof), len(goProof))
	}
	// The check above must be able to fail: a flipped bit, a wrong leaf.
	if len(proof) > 0 {
		bent := append([]tlog.Hash{}, proof...)
		bent[len(bent)-1][0] ^= 1
		if tlog.CheckRecord(bent, ip.Size, root, ip.Index, leaf) == nil {
			return errors.New("tlog.CheckRecord accepted a tampered proof")
		}
	}
	wrong := tlog.RecordHash(append([]byte("not "), leaves[ip.Index]...))
	if tlog.CheckRecord(proof, ip.Size, root, ip.Index, wrong) == nil {
		return errors.New("tlog.CheckRecord accepted the wrong leaf")
	}
	return nil
}

func checkConsistency(c *checker, m *Manifest, store *memStore, roots map[int64]tlog.Hash) {
	bad := 0
	for _, cp := range m.Consistency {
		what := fmt.Sprintf("consistency (%d -> %d)", cp.Old, cp.New)
		if err := consistencyOne(cp, store, roots); err != nil {
			c.fail("%s: %v", what, err)
			bad++
		}
	}
	if len(m.Consistency) > 0 && bad == 0 {
		c.ok("consistency: %d of our proofs pass tlog.CheckTree, equal tlog.ProveTree, and fail when tampered",
			len(m.Consistency))
	}
}

func consistencyOne(cp ConsistencyP, store *memStore, roots map[int64]tlog.Hash) error {
	oldRoot, ok1 := roots[cp.Old]
	newRoot, ok2 := roots[cp.New]
	if !ok1 || !ok2 {
		return errors.New("no verified root for one of the sizes")
	}
	proof, err := toHashes(cp.Proof)
	if err != nil {
		return err
	}
	if err := tlog.CheckTree(proof, cp.New, newRoot, cp.Old, oldRoot); err != nil {
		return fmt.Errorf("tlog.CheckTree rejects our proof: %w", err)
	}
	goProof, err := tlog.ProveTree(cp.New, cp.Old, store)
	if err != nil {
		return err
	}
	if !equalHashes(proof, goProof) {
		return fmt.Errorf("our proof (%d hashes) != tlog.ProveTree (%d hashes)", len(proof), len(goProof))
	}
	if len(proof) > 0 {
		bent := append([]tlog.Hash{}, proof...)
		bent[0][31] ^= 0x80
		if tlog.CheckTree(bent, cp.New, newRoot, cp.Old, oldRoot) == nil {
			return errors.New("tlog.CheckTree accepted a tampered proof")
		}
	}
	return nil
}

func equalHashes(a, b []tlog.Hash) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// goTilePath turns x/mod's path tile/8/L/N[.p/W] into the C2SP form tile/L/N[.p/W].
func goTilePath(t tlog.Tile) (string, error) {
	p := t.Path()
	prefix := fmt.Sprintf("tile/%d/", tileHeight)
	if !strings.HasPrefix(p, prefix) {
		return "", fmt.Errorf("unexpected x/mod tile path %q", p)
	}
	return "tile/" + strings.TrimPrefix(p, prefix), nil
}

// expectedTiles is tlog.NewTiles(8, 0, size) less the narrower partial tiles:
// x/mod lists every width 1..W of the last tile of a level (sumdb publishes
// them all), a tlog-tiles log serves only the widest.
func expectedTiles(size int64) []tlog.Tile {
	widest := make(map[[2]int64]int)
	for _, t := range tlog.NewTiles(tileHeight, 0, size) {
		k := [2]int64{int64(t.L), t.N}
		if t.W > widest[k] {
			widest[k] = t.W
		}
	}
	var out []tlog.Tile
	for _, t := range tlog.NewTiles(tileHeight, 0, size) {
		if t.W == widest[[2]int64{int64(t.L), t.N}] {
			out = append(out, t)
		}
	}
	return out
}

// dirTiles is a tlog.TileReader over our tile files, for tlog.TileHashReader.
type dirTiles struct {
	dir string
}

func (d dirTiles) Height() int { return tileHeight }

func (d dirTiles) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		p, err := goTilePath(t)
		if err != nil {
			return nil, err
		}
		data, err := os.ReadFile(filepath.Join(d.dir, filepath.FromSlash(p)))
		if err != nil {
			return nil, err
		}
		out[i] = data
	}
	return out, nil
}

func (d dirTiles) SaveTiles([]tlog.Tile, [][]byte) {}

func checkTiles(c *checker, dir string, ts TileSet, store *memStore, roots map[int64]tlog.Hash) {
	label := fmt.Sprintf("tiles (size %d)", ts.Size)
	tiles := expectedTiles(ts.Size)
	var goPaths []string
	for _, t := range tiles {
		p, err := goTilePath(t)
		if err != nil {
			c.fail("%s: %v", label, err)
			return
		}
		goPaths = append(goPaths, p)
	}
	ours := append([]string{}, ts.Paths...)
	sort.Strings(ours)
	sorted := append([]string{}, goPaths...)
	sort.Strings(sorted)
	if strings.Join(ours, " ") != strings.Join(sorted, " ") {
		c.fail("%s: our tiles_for_size paths %v != tlog.NewTiles (widest partials) %v", label, ours, sorted)
		return
	}
	for _, p := range ts.Paths {
		t, err := tlog.ParseTilePath(fmt.Sprintf("tile/%d/%s", tileHeight, strings.TrimPrefix(p, "tile/")))
		if err != nil {
			c.fail("%s: tlog.ParseTilePath on our path %q (height inserted): %v", label, p, err)
			return
		}
		back, _ := goTilePath(t)
		if back != p {
			c.fail("%s: our path %q parses in Go to %q", label, p, back)
			return
		}
	}
	tileDir := filepath.Join(dir, ts.Dir)
	for i, t := range tiles {
		want, err := tlog.ReadTileData(t, store)
		if err != nil {
			c.fail("%s: tlog.ReadTileData(%s): %v", label, goPaths[i], err)
			return
		}
		got, err := os.ReadFile(filepath.Join(tileDir, filepath.FromSlash(goPaths[i])))
		if err != nil {
			c.fail("%s: %v", label, err)
			return
		}
		if !bytes.Equal(got, want) {
			c.fail("%s: %s: our %d bytes differ from tlog.ReadTileData's %d bytes", label, goPaths[i], len(got), len(want))
			return
		}
	}
	c.ok("%s: %d tiles, paths equal tlog.Tile.Path (less the height element), data equal tlog.ReadTileData byte for byte",
		label, len(tiles))

	// Go's tile client, reading only our tile files, authenticates them
	// against the tree and serves the same hashes as Go's own store.
	root, ok := roots[ts.Size]
	if !ok {
		c.fail("%s: no verified root for that size", label)
		return
	}
	thr := tlog.TileHashReader(tlog.Tree{N: ts.Size, Hash: root}, dirTiles{tileDir})
	th, err := tlog.TreeHash(ts.Size, thr)
	if err != nil || th != root {
		c.fail("%s: tlog.TileHashReader over our tiles: TreeHash %x, %v", label, th[:], err)
		return
	}
	for _, idx := range sampleIndexes(ts.Size) {
		p, err := tlog.ProveRecord(ts.Size, idx, thr)
		if err == nil {
			err = tlog.CheckRecord(p, ts.Size, root, idx, (*store)[tlog.StoredHashIndex(0, idx)])
		}
		if err != nil {
			c.fail("%s: proof for %d through tlog.TileHashReader over our tiles: %v", label, idx, err)
			return
		}
	}
	c.ok("%s: tlog.TileHashReader authenticates our tiles against the root and proves records from them", label)
}

func sampleIndexes(size int64) []int64 {
	set := map[int64]bool{0: true, size - 1: true, size / 2: true}
	for _, x := range []int64{255, 256, 257, 65535, 65536} {
		if x < size {
			set[x] = true
		}
	}
	var out []int64
	for x := range set {
		out = append(out, x)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// checkReceipt parses a C2SP tlog-proof file by hand (x/mod has no parser for
// it), opens its checkpoint with note.Open and checks the entry with tlog.CheckRecord.
func checkReceipt(c *checker, dir string, m *Manifest, ref ReceiptRef, v note.Verifier) {
	label := fmt.Sprintf("receipt %s", ref.File)
	if v == nil {
		c.fail("%s: no log verifier", label)
		return
	}
	data, err := os.ReadFile(filepath.Join(dir, ref.File))
	if err != nil {
		c.fail("%s: %v", label, err)
		return
	}
	index, proof, cpNote, err := parseReceipt(data)
	if err != nil {
		c.fail("%s: %v", label, err)
		return
	}
	if index != ref.Index {
		c.fail("%s: index %d, want %d", label, index, ref.Index)
		return
	}
	n, err := note.Open(cpNote, note.VerifierList(v))
	if err != nil {
		c.fail("%s: note.Open on the embedded checkpoint: %v", label, err)
		return
	}
	_, tree, err := parseCheckpointText(n.Text)
	if err != nil {
		c.fail("%s: embedded checkpoint: %v", label, err)
		return
	}
	if index >= int64(len(m.Leaves)) {
		c.fail("%s: index %d outside the leaves", label, index)
		return
	}
	err = tlog.CheckRecord(proof, tree.N, tree.Hash, index, tlog.RecordHash(m.Leaves[index]))
	if err != nil {
		c.fail("%s: tlog.CheckRecord (index %d, size %d): %v", label, index, tree.N, err)
		return
	}
	for _, w := range m.Witnesses {
		if err := checkCosignature(cpNote, n.Text, w); err != nil {
			c.fail("%s: cosignature by %s: %v", label, w.Name, err)
			return
		}
	}
	c.ok("%s: parsed by hand, checkpoint opened by note.Open, entry %d in tree of size %d by tlog.CheckRecord (%d cosignatures checked)",
		label, index, tree.N, len(m.Witnesses))
}

func parseReceipt(data []byte) (index int64, proof tlog.RecordProof, checkpoint []byte, err error) {
	text := string(data)
	head, cp, ok := strings.Cut(text, "\n\n")
	if !ok {
		return 0, nil, nil, errors.New("no empty line before the checkpoint")
	}
	lines := strings.Split(head, "\n")
	if lines[0] != "c2sp.org/tlog-proof@v1" {
		return 0, nil, nil, fmt.Errorf("first line %q", lines[0])
	}
	lines = lines[1:]
	if len(lines) > 0 && strings.HasPrefix(lines[0], "extra ") {
		b64 := strings.TrimPrefix(lines[0], "extra ")
		raw, err := base64.StdEncoding.Strict().DecodeString(b64)
		if err != nil || base64.StdEncoding.EncodeToString(raw) != b64 {
			return 0, nil, nil, fmt.Errorf("extra line %q is not canonical base64", lines[0])
		}
		lines = lines[1:]
	}
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "index ") {
		return 0, nil, nil, errors.New("no index line")
	}
	s := strings.TrimPrefix(lines[0], "index ")
	index, err = strconv.ParseInt(s, 10, 64)
	if err != nil || index < 0 || strconv.FormatInt(index, 10) != s {
		return 0, nil, nil, fmt.Errorf("index %q is not canonical decimal", s)
	}
	for _, l := range lines[1:] {
		raw, err := base64.StdEncoding.Strict().DecodeString(l)
		if err != nil || len(raw) != tlog.HashSize || base64.StdEncoding.EncodeToString(raw) != l {
			return 0, nil, nil, fmt.Errorf("proof line %q is not canonical base64 of 32 bytes", l)
		}
		h, _ := toHash(raw)
		proof = append(proof, h)
	}
	return index, proof, []byte(cp), nil
}
