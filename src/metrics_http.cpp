// metrics_http — see include/evwheel/metrics_http.hpp.  A request head (request line and
// headers, up to the blank line) is one frame of HeadCodec; each connection answers its first
// frame and then half-closes, so whatever else the client sends is read and ignored.
#include "evwheel/metrics_http.hpp"

#include <algorithm>
#include <memory>
#include <stdexcept>

#include "evwheel/connection.hpp"

namespace evwheel {

namespace {

// Frames a request head: the bytes up to and including the blank line that ends the headers
// (CRLF CRLF, or bare LFs as lenient servers accept).  A head that has not ended within
// kMaxRequest bytes comes out as a frame of exactly kMaxRequest bytes with no blank line in it,
// so the handler can answer 431 instead of the connection being reset as a protocol error.
// Carries raw bytes out (no header) and no pings: HTTP clients do not speak the heartbeat.
class HeadCodec final : public Codec {
 public:
  std::string_view name() const noexcept override { return "http-request-head"; }

  std::ptrdiff_t decode(char* bytes, std::size_t size, Frame& frame, CodecState&, std::size_t) const noexcept override {
    std::string_view input(bytes, size);
    std::string_view window = input.substr(0, MetricsHttp::kMaxRequest);
    std::size_t end = head_end(window);
    if (end == 0 && input.size() < MetricsHttp::kMaxRequest) return 0;
    if (end == 0) end = window.size();
    frame = Frame{};
    frame.payload = input.substr(0, end);
    return static_cast<std::ptrdiff_t>(end);
  }
  int encode_header(FrameType type, MessageType, std::size_t, const uint8_t*, char*) const noexcept override {
    return type == FrameType::data ? 0 : -1;
  }
  std::size_t ping_payload_size() const noexcept override { return 0; }

  // The length of the head at the front of `bytes` (through its blank line), 0 if not there.
  static std::size_t head_end(std::string_view bytes) noexcept {
    for (std::size_t lf = bytes.find('\n'); lf != std::string_view::npos; lf = bytes.find('\n', lf + 1)) {
      std::size_t next = lf + 1;
      if (next < bytes.size() && bytes[next] == '\r') ++next;
      if (next < bytes.size() && bytes[next] == '\n') return next + 1;
    }
    return 0;
  }
};

struct RequestLine {
  std::string_view method, path;  // path without its query string
  bool valid = false;
};

// "METHOD SP TARGET SP HTTP/x.y" at the front of `head`.
RequestLine parse_request_line(std::string_view head) {
  std::string_view line = head.substr(0, head.find_first_of("\r\n"));
  std::size_t method_end = line.find(' ');
  if (method_end == 0 || method_end == std::string_view::npos) return {};
  std::size_t target_end = line.find(' ', method_end + 1);
  if (target_end == std::string_view::npos || target_end == method_end + 1 ||
      line.compare(target_end + 1, 5, "HTTP/") != 0)
    return {};
  std::string_view target = line.substr(method_end + 1, target_end - method_end - 1);
  return {line.substr(0, method_end), target.substr(0, target.find('?')), true};
}

// A whole response; `with_body` false (HEAD) keeps Content-Length but drops the body.
std::string response(std::string_view status, std::string_view extra_headers, const std::string& body,
                     bool with_body = true, std::string_view type = "text/plain; charset=utf-8") {
  std::string text = "HTTP/1.1 ";
  text.append(status).append("\r\nContent-Type: ").append(type);
  text.append("\r\nContent-Length: ").append(std::to_string(body.size()));
  text.append("\r\nConnection: close\r\n").append(extra_headers).append("\r\n");
  if (with_body) text += body;
  return text;
}

EndpointOptions endpoint_options(Duration deadline) {
  // An hour is far beyond any scrape; the bound keeps the idle timeout below from overflowing.
  if (deadline <= Duration::zero() || deadline > std::chrono::hours(1))
    throw std::invalid_argument("evwheel: metrics_http deadline must be within (0, 1 h]");
  EndpointOptions options;
  options.side = Side::server;
  options.codec = std::make_shared<HeadCodec>();
  // The server never pings (mode client, and the codec carries no ping); the idle close lies
  // past the deadline, so the deadline is the one limit a client meets.
  options.heartbeat.mode = PingMode::client;
  options.heartbeat.ping_interval = deadline;
  options.heartbeat.idle_timeout = 2 * deadline;
  options.read_size = MetricsHttp::kMaxRequest;
  return options;
}

ListenerOptions listener_options(std::string address) {
  ListenerOptions options;
  options.address = std::move(address);
  options.backlog = 64;
  options.max_connections = MetricsHttp::kMaxClients;
  return options;
}

}  // namespace

MetricsHttp::MetricsHttp(Reactor& reactor, Render render, MetricsHttpOptions options)
    : render_(std::move(render)),
      deadline_(options.deadline),
      endpoint_(reactor, *this, endpoint_options(options.deadline)),
      listener_(endpoint_, listener_options(std::move(options.address))) {
  deadlines_.reserve(kMaxClients);
}

void MetricsHttp::on_open(Connection& connection) {
  Connection* client = &connection;
  TimerId timer = endpoint_.reactor().run_after(deadline_, [client] { client->close(); });
  deadlines_.emplace_back(client, timer);
}

void MetricsHttp::on_close(Connection& connection, CloseReason, int) {
  auto entry = std::find_if(deadlines_.begin(), deadlines_.end(),
                            [&](const auto& pair) { return pair.first == &connection; });
  if (entry == deadlines_.end()) return;
  endpoint_.reactor().cancel(entry->second);  // safe from inside that timer's own callback
  deadlines_.erase(entry);
}

void MetricsHttp::on_message(Connection& connection, std::string_view head) {
  if (!connection.open()) return;  // answered already: the rest is not another request
  connection.send(answer(head));
  connection.shutdown();  // FIN once the answer is out; the client's close ends the connection
}

std::string MetricsHttp::answer(std::string_view head) const {
  if (HeadCodec::head_end(head) == 0)
    return response("431 Request Header Fields Too Large", "", "request head over " + std::to_string(kMaxRequest) + " bytes\n");
  RequestLine request = parse_request_line(head);
  if (!request.valid) return response("400 Bad Request", "", "malformed request line\n");
  const bool get = request.method == "GET";
  if (!get && request.method != "HEAD")
    return response("405 Method Not Allowed", "Allow: GET, HEAD\r\n", "only GET and HEAD are served here\n");
  if (request.path != "/metrics") return response("404 Not Found", "", "only /metrics is served here\n", get);
  return response("200 OK", "", render_(), get, "text/plain; version=0.0.4; charset=utf-8");
}

}  // namespace evwheel
