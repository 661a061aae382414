// Starts GraphiQL on the playground page. It is a file rather than an inline
// <script> so that the page's Content-Security-Policy can forbid inline
// scripts altogether. The GraphQL endpoint comes from the data-endpoint
// attribute of #graphiql, which the server fills in (HTML-escaped).
(function () {
  'use strict';

  var root = document.getElementById('graphiql');
  var endpoint = root.getAttribute('data-endpoint');

  var defaultQuery = [
    '# identityd GraphQL playground',
    '#',
    '# To act as an admin, put your admin key in',
    '# the Headers tab below:',
    '#',
    '#   { "Authorization": "Bearer <admin key>" }',
    '#',
    '# Headers stay in memory: this page never saves',
    '# them in the browser. Run a query with the',
    '# run button or Ctrl-Enter.',
    '',
    'query {',
    '  identitySchemas {',
    '    id',
    '  }',
    '}',
    '',
  ].join('\n');

  // A plain fetch-based fetcher rather than GraphiQL.createFetcher: it asks
  // for the GraphQL-over-HTTP media type first, lets the headers editor
  // override any header, and turns a non-JSON answer (a proxy error page, a
  // 405, ...) into a readable GraphQL error instead of a JSON parse failure.
  function fetcher(params, opts) {
    var subscription = isSubscription(params, opts);
    var headers = {
      'Content-Type': 'application/json',
      Accept: subscription
        ? 'text/event-stream'
        : 'application/graphql-response+json, application/json',
    };
    var extra = (opts && opts.headers) || {};
    Object.keys(extra).forEach(function (name) {
      // Header names are case-insensitive: a user's "accept" replaces ours.
      Object.keys(headers).forEach(function (own) {
        if (own.toLowerCase() === name.toLowerCase()) {
          delete headers[own];
        }
      });
      headers[name] = extra[name];
    });
    if (subscription) {
      return subscribe(params, headers);
    }
    return fetch(endpoint, {
      method: 'POST',
      headers: headers,
      body: JSON.stringify(params),
    }).then(readAnswer);
  }

  // readAnswer reads a JSON answer, or says what came instead.
  function readAnswer(res) {
    return res.text().then(function (text) {
      try {
        return JSON.parse(text);
      } catch (e) {
        return {
          errors: [
            {
              message:
                'HTTP ' + res.status + ' ' + res.statusText +
                ' (not a JSON answer): ' + text.slice(0, 500),
            },
          ],
        };
      }
    });
  }

  // isSubscription: the operation to run is a subscription (identityEvents).
  function isSubscription(params, opts) {
    var doc = opts && opts.documentAST;
    if (doc && doc.definitions) {
      var ops = doc.definitions.filter(function (d) {
        return d.kind === 'OperationDefinition';
      });
      var op = ops.filter(function (d) {
        return !params.operationName || (d.name && d.name.value === params.operationName);
      })[0];
      return !!op && op.operation === 'subscription';
    }
    return /^\s*subscription\b/.test(String(params.query).replace(/#[^\n]*/g, ''));
  }

  // subscribe runs a subscription over Server-Sent Events (GraphQL over
  // SSE: a POST that asks for text/event-stream), with the same headers as
  // any request, the admin key included: a WebSocket could carry it only in
  // its first message. GraphiQL reads the answers as they come; stopping
  // (return) aborts the request at once, even while it waits for the next
  // event, which a generator's own return would not do.
  function subscribe(params, headers) {
    var controller = new AbortController();
    var events = stream(params, headers, controller.signal);
    var iterator = {
      next: function () {
        return events.next();
      },
      return: function () {
        controller.abort();
        return events.return();
      },
    };
    iterator[Symbol.asyncIterator] = function () {
      return iterator;
    };
    return iterator;
  }

  async function* stream(params, headers, signal) {
    try {
      var res = await fetch(endpoint, {
        method: 'POST',
        headers: headers,
        body: JSON.stringify(params),
        signal: signal,
      });
      if ((res.headers.get('Content-Type') || '').indexOf('text/event-stream') !== 0) {
        yield await readAnswer(res);
        return;
      }
      var reader = res.body.getReader();
      var decoder = new TextDecoder();
      var buffer = '';
      for (;;) {
        var chunk = await reader.read();
        if (chunk.done) {
          return;
        }
        buffer += decoder.decode(chunk.value, { stream: true }).replace(/\r\n?/g, '\n');
        var end;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          var block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          var event = 'message';
          var data = [];
          block.split('\n').forEach(function (line) {
            if (line.indexOf('event:') === 0) {
              event = line.slice(6).trim();
            } else if (line.indexOf('data:') === 0) {
              data.push(line.slice(5).replace(/^ /, ''));
            }
          });
          if (event === 'complete') {
            return;
          }
          if (event === 'next' && data.length > 0) {
            yield JSON.parse(data.join('\n'));
          }
        }
      }
    } catch (e) {
      if (!signal.aborted) {
        throw e;
      }
    }
  }

  // GraphiQL keeps tabs and query history in localStorage. shouldPersistHeaders
  // keeps headers out of the saved tabs, but GraphiQL 4's history plugin saves
  // every executed operation together with its headers (the admin key!). This
  // storage wraps localStorage and drops headers from whatever it saves.
  var prefix = 'graphiql:';
  // The keys whose JSON values hold operations with their headers:
  // queries and favorites are {"queries": [{query, variables, headers, ...}]},
  // tabState is {"tabs": [{..., headers}], ...}.
  var withOperations = [prefix + 'queries', prefix + 'favorites', prefix + 'tabState'];
  function scrub(key, value) {
    if (withOperations.indexOf(key) < 0) {
      return value;
    }
    var data;
    try {
      data = JSON.parse(value);
    } catch (e) {
      return value;
    }
    if (!data || typeof data !== 'object') {
      return value;
    }
    Object.keys(data).forEach(function (field) {
      if (Array.isArray(data[field])) {
        data[field].forEach(function (item) {
          if (item && typeof item === 'object' && 'headers' in item) {
            item.headers = null;
          }
        });
      }
    });
    return JSON.stringify(data);
  }
  var storage = {
    getItem: function (key) {
      return localStorage.getItem(key);
    },
    setItem: function (key, value) {
      if (key === prefix + 'headers') {
        return; // never saved, whatever GraphiQL asks
      }
      localStorage.setItem(key, scrub(key, value));
    },
    removeItem: function (key) {
      localStorage.removeItem(key);
    },
    get length() {
      return Object.keys(localStorage).filter(function (key) {
        return key.indexOf(prefix) === 0;
      }).length;
    },
    clear: function () {
      Object.keys(localStorage).forEach(function (key) {
        if (key.indexOf(prefix) === 0) {
          localStorage.removeItem(key);
        }
      });
    },
  };

  ReactDOM.createRoot(root).render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultQuery: defaultQuery,
      storage: storage,
      // The admin key travels in a header, so the headers editor must be on
      // and open; it must never be written to localStorage.
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: false,
      // The storage above would ignore the "persist headers" setting anyway;
      // hiding it avoids promising something the page will not do.
      showPersistHeadersSettings: false,
      defaultEditorToolsVisibility: 'headers',
    })
  );
})();
