using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Ddpo.Tests.Rewards;

/// <summary>A request as the test server saw it.</summary>
public sealed record SeenRequest(string Method, string Path, string Body, string? Authorization);

/// <summary>
/// A real HTTP server on 127.0.0.1 at a free port (HttpListener), answering with <c>handler</c>; it records
/// every request. Disposing stops it. Only for tests: it binds the loopback address only.
/// </summary>
public sealed class LocalHttpServer : IDisposable
{
    private readonly HttpListener _listener = new();
    private readonly Func<SeenRequest, int, Task<(int Status, string Body)>> _handler;
    private readonly List<SeenRequest> _requests = [];
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;

    /// <summary>Starts a server; <paramref name="handler"/> gets the request and its 0-based index.</summary>
    public LocalHttpServer(Func<SeenRequest, int, Task<(int Status, string Body)>> handler)
    {
        _handler = handler;
        for (int attempt = 0; ; attempt++)
        {
            Port = FreePort();
            BaseUrl = $"http://127.0.0.1:{Port}";
            _listener.Prefixes.Clear();
            _listener.Prefixes.Add(BaseUrl + "/");
            try
            {
                _listener.Start();
                break;
            }
            catch (HttpListenerException) when (attempt < 5)
            {
            }
        }
        _loop = Task.Run(LoopAsync);
    }

    /// <summary>A server answering every request with <paramref name="handler"/>'s synchronous result.</summary>
    public static LocalHttpServer Answering(Func<SeenRequest, int, (int Status, string Body)> handler) =>
        new((r, i) => Task.FromResult(handler(r, i)));

    /// <summary>The port.</summary>
    public int Port { get; private set; }

    /// <summary><c>http://127.0.0.1:PORT</c>.</summary>
    public string BaseUrl { get; private set; } = "";

    /// <summary>The requests received so far.</summary>
    public IReadOnlyList<SeenRequest> Requests
    {
        get { lock (_requests) return _requests.ToArray(); }
    }

    /// <summary>A port nobody listens on (bound and released at once): connecting to it is refused.</summary>
    public static int FreePort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        int port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    private async Task LoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            HttpListenerContext context;
            try
            {
                context = await _listener.GetContextAsync().ConfigureAwait(false);
            }
            catch (Exception) when (_stop.IsCancellationRequested || !_listener.IsListening)
            {
                return;
            }
            _ = Task.Run(() => HandleAsync(context));
        }
    }

    private async Task HandleAsync(HttpListenerContext context)
    {
        try
        {
            string body;
            using (var reader = new StreamReader(context.Request.InputStream, Encoding.UTF8))
            {
                body = await reader.ReadToEndAsync().ConfigureAwait(false);
            }
            var seen = new SeenRequest(context.Request.HttpMethod, context.Request.Url!.AbsolutePath, body, context.Request.Headers["Authorization"]);
            int index;
            lock (_requests)
            {
                index = _requests.Count;
                _requests.Add(seen);
            }
            var (status, text) = await _handler(seen, index).ConfigureAwait(false);
            var bytes = Encoding.UTF8.GetBytes(text);
            context.Response.StatusCode = status;
            context.Response.ContentType = "application/json";
            context.Response.ContentLength64 = bytes.Length;
            await context.Response.OutputStream.WriteAsync(bytes).ConfigureAwait(false);
            context.Response.Close();
        }
        catch (Exception)
        {
            try { context.Response.Abort(); } catch (Exception) { /* the client is gone */ }
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _stop.Cancel();
        try { _listener.Stop(); } catch (ObjectDisposedException) { }
        _listener.Close();
        try { _loop.Wait(TimeSpan.FromSeconds(2)); } catch (AggregateException) { }
        _stop.Dispose();
    }
}
