# SPDX-License-Identifier: Apache-2.0
"""``python -m badnets``: the same as the ``badnets`` command."""

from badnets._entry import main

main()
