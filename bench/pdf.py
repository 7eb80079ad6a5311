"""PDFs per second for each reference type, ours beside the naive baseline.

    .venv/bin/python -m bench.pdf [--per-type 20] [--rounds 5]

Both run in this process on the same issued certificates, interleaved round by round,
so machine noise hits both alike; figures are medians over rounds. Also prints the QR
version (ECC level M) each type needs with a 29-character public URL.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable

from bench.fixtures import TYPES, certificate_documents
from bench.naive_pdf import naive_certificate_pdf
from documents.certificate_pdf import render_certificate_pdf
from documents.model import CertificateDocument
from documents.qr import qr_matrix

Renderer = Callable[[CertificateDocument], bytes]


def pdfs_per_second(render: Renderer, documents: list[CertificateDocument]) -> float:
    started = time.perf_counter()
    for document in documents:
        render(document)
    return len(documents) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-type", type=int, default=20, help="distinct certificates per type")
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()

    documents = certificate_documents(options.per_type)
    render_certificate_pdf(documents["DL"][0])  # warm-up: fonts registered once per process
    naive_certificate_pdf(documents["DL"][0])

    print(
        f"PDF benchmark: {options.per_type} certificates per type, {options.rounds} rounds, "
        f"{platform.python_implementation()} {platform.python_version()} on {platform.machine()}"
    )
    print(
        f"{'type':<5}{'QR version (M)':>15}{'QR text bytes':>15}{'ours PDF/s':>12}{'naive PDF/s':>13}{'ratio':>8}"
        f"{'naive, fonts cached':>21}{'ratio':>8}"
    )
    ratios = []
    for type_code in TYPES:
        ours, naive, cached = [], [], []
        for _ in range(options.rounds):
            ours.append(pdfs_per_second(render_certificate_pdf, documents[type_code]))
            naive.append(pdfs_per_second(naive_certificate_pdf, documents[type_code]))
            cached.append(pdfs_per_second(lambda d: naive_certificate_pdf(d, load_fonts=False), documents[type_code]))
        version = max(qr_matrix(d.qr_text).version for d in documents[type_code])
        length = max(len(d.qr_text.encode()) for d in documents[type_code])
        ratio = statistics.median(ours) / statistics.median(naive)
        ratios.append(ratio)
        print(
            f"{type_code:<5}{version:>15}{length:>15}{statistics.median(ours):>12.1f}"
            f"{statistics.median(naive):>13.1f}{ratio:>7.2f}x{statistics.median(cached):>21.1f}"
            f"{statistics.median(ours) / statistics.median(cached):>7.2f}x"
        )
    print(f"median ratio to the naive baseline {statistics.median(ratios):.2f}x (goal >= 3x)")


if __name__ == "__main__":
    main()
