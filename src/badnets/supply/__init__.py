# SPDX-License-Identifier: Apache-2.0
"""The supply-chain half of BadNets (§6): model packages, author signatures, pickle scanning."""

from badnets.supply.package import ModelPackage, export_package, load_package, read_package_files
from badnets.supply.scan import FileScan, ScanLimits, ScanReport, scan_bytes, scan_file, scan_path
from badnets.supply.signing import generate_keypair, load_signed_package, sign_package, verify_package

__all__ = [
    "FileScan",
    "ModelPackage",
    "ScanLimits",
    "ScanReport",
    "export_package",
    "generate_keypair",
    "load_package",
    "load_signed_package",
    "read_package_files",
    "scan_bytes",
    "scan_file",
    "scan_path",
    "sign_package",
    "verify_package",
]
