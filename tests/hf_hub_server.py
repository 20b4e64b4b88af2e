"""hf_hub_server.py: a small stand-in for the Hugging Face hub on 127.0.0.1 for test_models.py, answering as the hub's
resolve URLs do (huggingface_hub's file_download.py reads the same headers): GET/HEAD /{org}/{name}/resolve/{revision}/
{file} with X-Repo-Commit, ETag (git blob sha1) for small files, and for LFS files (*.safetensors, *.gguf) a 302 to a
CDN URL on another host name (localhost) with X-Linked-Etag (the sha256) and X-Linked-Size; the CDN honours Range and
refuses a request that carries Authorization; 401 with X-Error-Code GatedRepo / RepoNotFound, 404 with EntryNotFound /
RevisionNotFound; a renamed repository answers with a relative 307 to its new name. Faults on demand: a transfer cut off half way, a corrupted body."""
import hashlib
import http.server
import os
import socket
import threading

LFS_SUFFIXES = (".safetensors", ".gguf")


class Repo:
    """A repository: file name -> bytes, one commit, optionally a token it needs."""

    def __init__(self, files, commit, token=None):
        self.files = files
        self.commit = commit
        self.token = token


class Hub:
    """The server's state: repositories, blobs by sha256, faults to inject, a log of requests."""

    def __init__(self):
        self.repos = {}
        self.blobs = {}
        self.interrupt = set()    # sha256s whose next CDN transfer stops half way
        self.corrupt = set()      # sha256s whose CDN transfers have one byte flipped
        self.log = []             # (method, path, Range header, had Authorization)
        self.renamed = {}         # old repository name -> new one
        self.lock = threading.Lock()
        self.server = None

    def add_repo(self, name, files, commit, token=None):
        """Adds a repository of files (name -> bytes)."""
        self.repos[name] = Repo(files, commit, token)
        for data in files.values():
            self.blobs[hashlib.sha256(data).hexdigest()] = data

    def start(self):
        """Starts serving on 127.0.0.1 (a free port) in a thread; returns the endpoint URL."""
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_HEAD(self):
                self.answer(head=True)

            def do_GET(self):
                self.answer(head=False)

            def answer(self, head):
                with hub.lock:
                    hub.log.append((self.command, self.path, self.headers.get("Range"),
                                    self.headers.get("Authorization") is not None))
                parts = self.path.split("?")[0].split("/")
                if len(parts) >= 3 and parts[1] == "cdn":
                    return self.cdn(parts[2], head)
                # /org/name/resolve/rev/file...
                if len(parts) < 6 or parts[3] != "resolve":
                    return self.error(404, "RepoNotFound", "Repository not found")
                repo_name = parts[1] + "/" + parts[2]
                rev = parts[4].replace("%2F", "/")
                fname = "/".join(parts[5:])
                if repo_name in hub.renamed:
                    # a renamed repository: a relative redirect to the new name (a loop when it names itself)
                    self.send_response(307)
                    self.send_header("Location", "/" + hub.renamed[repo_name] + "/" + "/".join(parts[3:]))
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                repo = hub.repos.get(repo_name)
                if repo is None:
                    # the hub answers 401 for a repository it does not show (absent or private)
                    return self.error(401, "RepoNotFound", "Repository Not Found for url: " + self.path)
                if repo.token and self.headers.get("Authorization") != "Bearer " + repo.token:
                    return self.error(401, "GatedRepo", f"Access to model {repo_name} is restricted. You must "
                                      "have access to it and be authenticated to access it. Please log in.")
                if rev not in ("main", repo.commit):
                    return self.error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
                data = repo.files.get(fname)
                if data is None:
                    return self.error(404, "EntryNotFound", f"{fname} does not exist on \"{rev}\"")
                git_sha = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
                if fname.endswith(LFS_SUFFIXES):
                    sha = hashlib.sha256(data).hexdigest()
                    self.send_response(302)
                    self.send_header("Location", f"http://localhost:{hub.port}/cdn/{sha}?X-Amz-Signature=x")
                    self.send_header("X-Repo-Commit", repo.commit)
                    self.send_header("X-Linked-Etag", f'"{sha}"')
                    self.send_header("X-Linked-Size", str(len(data)))
                    self.send_header("ETag", f'"{git_sha}"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("X-Repo-Commit", repo.commit)
                self.send_header("ETag", f'"{git_sha}"')
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if not head:
                    self.wfile.write(data)

            def cdn(self, sha, head):
                if self.headers.get("Authorization"):
                    return self.error(400, None, "Only one auth mechanism allowed")
                data = hub.blobs.get(sha)
                if data is None:
                    return self.error(404, None, "NoSuchKey")
                if sha in hub.corrupt:
                    data = bytes([data[0] ^ 0xFF]) + data[1:]
                start = 0
                rng = self.headers.get("Range")
                if rng and rng.startswith("bytes=") and rng.endswith("-"):
                    start = int(rng[6:-1])
                    if start >= len(data):
                        return self.error(416, None, "InvalidRange")
                body = data[start:]
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                if head:
                    return
                if sha in hub.interrupt:
                    hub.interrupt.discard(sha)
                    self.wfile.write(body[:len(body) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def error(self, status, code, message):
                body = message.encode()
                self.send_response(status)
                if code:
                    self.send_header("X-Error-Code", code)
                self.send_header("X-Error-Message", message)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.port}"

    def stop(self):
        """Stops the server."""
        if self.server:
            self.server.shutdown()
            self.server.server_close()

    def requests(self):
        """Returns and clears the log of requests."""
        with self.lock:
            log, self.log = self.log, []
        return log


def read_dir(path, names=None):
    """The regular files of a directory (or the given names) as name -> bytes."""
    names = names or sorted(n for n in os.listdir(path) if os.path.isfile(os.path.join(path, n)))
    return {n: open(os.path.join(path, n), "rb").read() for n in names}
