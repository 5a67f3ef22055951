package install

import (
	"os"
	"os/exec"
	"testing"
)

// The drop-in is what needrestart's Perl understands: read the way
// needrestart reads conf.d (after its own defaults), it marks
// teleport.service, and only it, as never to be restarted.
func TestNeedrestartDropIn(t *testing.T) {
	t.Parallel()
	tr := New(t.TempDir())
	if removed, err := tr.RemoveNeedrestart(); removed || err != nil {
		t.Fatalf("RemoveNeedrestart without a drop-in = %v, %v", removed, err)
	}
	for range 2 { // the second write finds the same text
		if err := tr.WriteNeedrestart(); err != nil {
			t.Fatal(err)
		}
	}
	fi, err := os.Stat(tr.NeedrestartPath())
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("drop-in: %v, %v", fi, err)
	}
	perl, err := exec.LookPath("perl")
	if err != nil {
		t.Skip("perl is not installed; needrestart needs it, and so does this check")
	}
	prog := `our %nrconf = (override_rc => { qr(^dbus) => 0 });
do $ARGV[0]; die $@ if $@;
for my $u ("teleport.service", "teleport-update.service", "xteleport.service", "dbus.service") {
  my $v = "default";
  foreach my $re (keys %{$nrconf{override_rc}}) { if ($u =~ /$re/) { $v = $nrconf{override_rc}->{$re}; last; } }
  print "$u=$v\n";
}`
	out, err := exec.Command(perl, "-e", prog, tr.NeedrestartPath()).CombinedOutput()
	if err != nil {
		t.Fatalf("perl: %v\n%s", err, out)
	}
	want := "teleport.service=0\nteleport-update.service=default\nxteleport.service=default\ndbus.service=0\n"
	if string(out) != want {
		t.Fatalf("needrestart would read:\n%s\nwant:\n%s", out, want)
	}
	if removed, err := tr.RemoveNeedrestart(); !removed || err != nil {
		t.Fatalf("RemoveNeedrestart = %v, %v", removed, err)
	}
	if _, err := os.Stat(tr.NeedrestartPath()); !os.IsNotExist(err) {
		t.Fatalf("drop-in after removal: %v", err)
	}
}
