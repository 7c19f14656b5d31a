#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora under fuzz/corpus/<target>/.

The seeds are small hand-made inputs in each target's input layout (see the
comment at the top of each <target>_fuzz.cc). They are committed; rerun this
after changing them here: python3 fuzz/make_seeds.py
"""
import os
import shutil

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def write(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode("latin-1"))


def multipart(name, content_type, body, sizes=b""):
    write("multipart", name, content_type.encode() + b"\n" + bytes([len(sizes)]) + sizes + body)


def main():
    if os.path.isdir(ROOT):
        shutil.rmtree(ROOT)

    # multipart: Content-Type line, N, N chunk sizes, body.
    browser = (
        b"------WebKitFormBoundaryx7Yz0aBcD\r\n"
        b'Content-Disposition: form-data; name="title"\r\n\r\n'
        b"My holiday\r\n"
        b"------WebKitFormBoundaryx7Yz0aBcD\r\n"
        b'Content-Disposition: form-data; name="file"; filename="clip.mp4"\r\n'
        b"Content-Type: video/mp4\r\n\r\n"
        b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom\r\n--\r\n-\r"
        b"\r\n------WebKitFormBoundaryx7Yz0aBcD--\r\n"
    )
    multipart("browser", "multipart/form-data; boundary=----WebKitFormBoundaryx7Yz0aBcD", browser)
    multipart("browser_split", "multipart/form-data; boundary=----WebKitFormBoundaryx7Yz0aBcD",
              browser, bytes([0, 3, 40, 1]))
    curl = (
        b"--------------------------d74496d66958873e\r\n"
        b'Content-Disposition: form-data; name="file"; filename="a \\"q\\" C:\\dir.webm"\r\n'
        b"Content-Type: video/webm\r\n\r\n"
        b"\x1a\x45\xdf\xa3webm\r\n"
        b"--------------------------d74496d66958873e--\r\n"
    )
    multipart("curl", 'multipart/form-data; boundary="------------------------d74496d66958873e"',
              curl, bytes([7]))
    multipart("preamble_padding", "Multipart/Form-Data; charset=utf-8; boundary=b",
              b"preamble --b not yet\r\n--b \t\r\n"
              b"content-disposition: form-data; name=x; filename=\"\"\r\nX-Other: 1\r\n\r\n"
              b"\r\n--x\r\n--\r\n-b\r\n--\r\r\n\r\n--b--  \r\nepilogue\r\n--b\r\n",
              bytes([0, 0, 1, 2]))
    multipart("empty_form", "multipart/form-data; boundary=xyz", b"--xyz--\r\n")
    multipart("no_closing", "multipart/form-data; boundary=xyz",
              b"--xyz\r\nContent-Disposition: form-data; name=f\r\n\r\ndata\r\n--xy")
    multipart("folded", "multipart/form-data; boundary=q",
              b"--q\r\nContent-Disposition: form-data;\r\n name=f\r\n\r\nv\r\n--q--")
    multipart("three_parts", "multipart/form-data; boundary=AaB03x",
              b"--AaB03x\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n"
              b"--AaB03x\r\nContent-Disposition: form-data; name=\"b\"\r\nContent-Type: text/plain\r\n\r\n2\r\n"
              b"--AaB03x\r\nContent-Disposition: form-data; name=\"c\"; filename=\"c.txt\"\r\n\r\n\r\n"
              b"--AaB03x--", bytes([2]))

    # byte_range: size line, header.
    for i, (size, header) in enumerate([
        ("1000", "bytes=0-99"), ("1000", "bytes=500-"), ("1000", "bytes=-200"),
        ("1000", "bytes=0-0"), ("1000", "bytes=999-1000000"), ("1000", "bytes=1000-"),
        ("0", "bytes=0-"), ("0", "bytes=-5"), ("1000", "bytes=-0"),
        ("1000", "BYTES = 10 - 20 "), ("1000", "bytes=0-1,2-3"), ("1000", "bytes=, 5-9 ,"),
        ("1000", "items=0-1"), ("1000", "bytes=5-4"),
        ("18446744073709551615", "bytes=18446744073709551614-99999999999999999999999"),
        ("1000", "bytes=00000000000000000000000000001-2"),
    ]):
        write("byte_range", "range%02d" % i, size + "\n" + header)

    # url: paths, queries, names.
    for i, text in enumerate([
        "/content/01hzy8k2m3n4p5q6r7s8t9v0wx/media_0.m3u8",
        "/content/01hzy8k2m3n4p5q6r7s8t9v0wx/chunk-0-00001.m4s",
        "/content/01hzy8k2m3n4p5q6r7s8t9v0wx/%2e%2e",
        "/content/%2E%2E/%2fetc%2fpasswd",
        "/api/videos/01hzy8k2m3n4p5q6r7s8t9v0wx",
        "//a//b/",
        "limit=10&page_token=01hzy8k2m3n4p5q6r7s8t9v0wx&status=ready",
        "a=1&a=2&&b&c=%20+x&d=%zz&e=%4",
        "name%00.mp4",
        "..\\..\\windows",
        "thumbnail.jpg",
        "%41%42%43",
    ]):
        write("url", "url%02d" % i, text)

    # hls_fixup: playlists as ffmpeg 5.1's dash muxer writes them, and variants.
    dash_muxer = (
        "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:1\n"
        "#EXT-X-MAP:URI=\"init-0.m4s\"\n#EXTINF:4.000000,\n"
        "#EXT-X-PROGRAM-DATE-TIME:2024-05-01T10:00:00.000+0000\nchunk-0-00001.m4s\n"
        "#EXTINF:2.000000,\n#EXT-X-PROGRAM-DATE-TIME:2024-05-01T10:00:04.000+0000\n"
        "chunk-0-00002.m4s\n#EXT-X-ENDLIST\n"
    )
    write("hls_fixup", "dash_muxer", dash_muxer)
    write("hls_fixup", "dash_muxer_crlf", dash_muxer.replace("\n", "\r\n").rstrip("\r\n"))
    write("hls_fixup", "event", "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-PLAYLIST-TYPE:EVENT\n"
                               "#EXTINF:4.0,\na.ts\n#EXT-X-ENDLIST\n#EXT-X-ENDLIST\nafter\n")
    write("hls_fixup", "no_version", "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4.0,\na.ts\n")
    write("hls_fixup", "header_only", "#EXTM3U\n")
    write("hls_fixup", "master", "#EXTM3U\n#EXT-X-VERSION:6\n"
                                "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"group_A1\",NAME=\"audio_0\","
                                "DEFAULT=YES,URI=\"media_5.m3u8\"\n"
                                "#EXT-X-STREAM-INF:BANDWIDTH=1200000,RESOLUTION=640x360,"
                                "CODECS=\"avc1.64001e,mp4a.40.2\",AUDIO=\"group_A1\"\nmedia_0.m3u8\n")
    write("hls_fixup", "not_hls", "<?xml version=\"1.0\"?>\n<MPD/>\n")

    # admin_cli: one argument per line.
    for i, text in enumerate([
        "list\n127.0.0.1:8081",
        "--json\nstatus\n127.0.0.1:8081",
        "add\n127.0.0.1:8081\n127.0.0.1:9104\n--id\nnode4\n--weight\n2.5\n--timeout\n60",
        "add\n127.0.0.1:8081\nnode-4\n--no-wait",
        "remove\n127.0.0.1:8081\n127.0.0.1:9101\n--json",
        "resume\n127.0.0.1:8081\n--no-wait\n--timeout=0.5",
        "--help",
        "add\n--help",
        "frobnicate\nx",
        "list",
        "--timeout\n0\nlist\n127.0.0.1:8081",
        # Once accepted (see CommandLineTest): NaN, and an empty operand.
        "list\n127.0.0.1:8081\n--timeout\nnan",
        "add\n127.0.0.1:8081\n127.0.0.1:9104\n--weight=nan",
        "add\n127.0.0.1:8081\n",
    ]):
        write("admin_cli", "args%02d" % i, text)


if __name__ == "__main__":
    main()
