#!/bin/sh
# The dedicated all-projects reader for homevol, as a cloud admin (docs/openstack.md).
# homevol-reader implies reader, so one assignment on homevol's own project is enough; the
# policy files beside this script give the role the cross-project listings, and nothing else.
set -eu
project=${HOMEVOL_PROJECT:-homevol}
openstack role create homevol-reader
openstack implied role create homevol-reader --implied-role reader
openstack project create --domain Default --description "homevol's service project" "$project"
openstack user create --domain Default --password-prompt homevol
openstack role add --user homevol --project "$project" homevol-reader
