#!/usr/bin/env bash
# Print the Debian archive URI this machine's apt is configured with (the first source whose URI
# ends in /debian), so that nothing in the project names an archive host. Exits 1 if there is none.
set -euo pipefail
uri=$({ grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}'
        grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list | awk '{print $2}'
      } | grep -E '/debian/?$' | head -n1 || true)
if [ -z "$uri" ]; then
  echo "no Debian archive (a URI ending in /debian) in /etc/apt/sources.list*" >&2
  exit 1
fi
echo "${uri%/}"
