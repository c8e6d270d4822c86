# SPDX-License-Identifier: Apache-2.0
"""Backdoor defenses: detectors and mitigations behind one interface (see ``badnets.audit``)."""
