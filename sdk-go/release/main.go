// Command release writes the Go SDK as the Go module proxy serves it: a
// GOPROXY folder (the file:// layout of the module proxy protocol) holding
// the module's .info, .mod and .zip for one version, plus the modules it
// requires, copied from the module cache, so that
//
//	GOPROXY=file://$PWD/dist/goproxy go get github.com/zerorelay/zerorelay/sdk-go@v0.1.0
//
// works with nothing else reachable. The zip is made by golang.org/x/mod/zip,
// the code the go command and the proxy use, so it obeys the same rules (file
// names, sizes, no nested modules, no vendor folder) and hashes the same.
//
// Usage: release -src DIR -version vX.Y.Z -out DIR
//
// DIR (-src) must hold exactly the module's files: `make dist` stages the
// files git tracks plus the release static library in lib/linux_amd64/.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
	"golang.org/x/mod/zip"
)

func main() {
	src := flag.String("src", "", "the staged module folder")
	version := flag.String("version", "", "the version to write, e.g. v0.1.0")
	out := flag.String("out", "", "the GOPROXY folder to write into")
	stamp := flag.String("time", "", "the version's time (RFC 3339); default: now")
	flag.Parse()
	if *src == "" || *out == "" || !semver.IsValid(*version) {
		fmt.Fprintln(os.Stderr, "usage: release -src DIR -version vX.Y.Z -out DIR [-time RFC3339]")
		os.Exit(2)
	}
	t := time.Now().UTC()
	if *stamp != "" {
		var err error
		if t, err = time.Parse(time.RFC3339, *stamp); err != nil {
			fail("-time: %v", err)
		}
	}
	if err := run(*src, *version, *out, t.UTC()); err != nil {
		fail("%v", err)
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "release: "+format+"\n", args...)
	os.Exit(1)
}

func run(src, version, out string, t time.Time) error {
	gomod, err := os.ReadFile(filepath.Join(src, "go.mod"))
	if err != nil {
		return err
	}
	mf, err := modfile.Parse("go.mod", gomod, nil)
	if err != nil {
		return err
	}
	mv := module.Version{Path: mf.Module.Mod.Path, Version: version}
	dir, err := versionDir(out, mv.Path)
	if err != nil {
		return err
	}
	base := filepath.Join(dir, version)

	f, err := os.Create(base + ".zip")
	if err != nil {
		return err
	}
	if err := zip.CreateFromDir(f, mv, src); err != nil {
		f.Close()
		return fmt.Errorf("zipping %s: %w", mv, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.WriteFile(base+".mod", gomod, 0o644); err != nil {
		return err
	}
	info, _ := json.Marshal(map[string]any{"Version": version, "Time": t.Format(time.RFC3339)})
	if err := os.WriteFile(base+".info", info, 0o644); err != nil {
		return err
	}
	if err := addToList(dir, version); err != nil {
		return err
	}
	fmt.Printf("wrote %s.{zip,mod,info}\n", base)

	// The modules the SDK requires, from the module cache (downloaded
	// there first if missing), in the same layout.
	for _, r := range mf.Require {
		if err := copyDependency(src, out, r.Mod); err != nil {
			return err
		}
	}
	return nil
}

// versionDir is the proxy's <escaped module path>/@v folder.
func versionDir(out, path string) (string, error) {
	esc, err := module.EscapePath(path)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(out, filepath.FromSlash(esc), "@v")
	return dir, os.MkdirAll(dir, 0o755)
}

// addToList records version in the folder's list file (one per line).
func addToList(dir, version string) error {
	list := filepath.Join(dir, "list")
	old, err := os.ReadFile(list)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	seen := map[string]bool{version: true}
	for _, v := range strings.Fields(string(old)) {
		seen[v] = true
	}
	var vs []string
	for v := range seen {
		vs = append(vs, v)
	}
	sort.Slice(vs, func(i, j int) bool { return semver.Compare(vs[i], vs[j]) < 0 })
	return os.WriteFile(list, []byte(strings.Join(vs, "\n")+"\n"), 0o644)
}

// copyDependency copies one required module's .info, .mod and .zip from
// the module cache (`go mod download -json` reports where they are).
func copyDependency(src, out string, m module.Version) error {
	cmd := exec.Command("go", "mod", "download", "-json", m.Path+"@"+m.Version)
	cmd.Dir = src
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go mod download %s: %w", m, err)
	}
	var d struct{ Info, GoMod, Zip, Error string }
	if err := json.Unmarshal(stdout.Bytes(), &d); err != nil {
		return err
	}
	if d.Error != "" {
		return fmt.Errorf("go mod download %s: %s", m, d.Error)
	}
	dir, err := versionDir(out, m.Path)
	if err != nil {
		return err
	}
	for ext, from := range map[string]string{".info": d.Info, ".mod": d.GoMod, ".zip": d.Zip} {
		if err := copyFile(from, filepath.Join(dir, m.Version+ext)); err != nil {
			return err
		}
	}
	fmt.Printf("copied %s from the module cache\n", m)
	return addToList(dir, m.Version)
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	o, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(o, in); err != nil {
		o.Close()
		return err
	}
	return o.Close()
}
