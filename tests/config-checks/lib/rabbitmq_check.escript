#!/usr/bin/env escript
%% Validate RabbitMQ configuration offline with RabbitMQ's own boot-time code:
%% rabbit_prelaunch_conf:generate_config_from_cuttlefish_files/3 is what the broker runs at
%% start: it loads the Cuttlefish schemas of every application in the plugins directory,
%% parses the .conf files (main + conf.d), maps them through the schemas (unknown keys,
%% bad values, failed validators are errors), and overlays advanced.config.
%% The enabled_plugins file is read with file:consult (as rabbitmq-plugins does) and each
%% plugin must exist in the plugins directory.
%% Usage: rabbitmq_check.escript PLUGINS_DIR ENABLED_PLUGINS_FILE|- ADVANCED_CONFIG|- CONF...
main([PluginsDir, EnabledFile, Advanced | Confs]) ->
    [code:add_pathz(D) || D <- filelib:wildcard(filename:join(PluginsDir, "*/ebin"))],
    Available = [list_to_atom(hd(string:split(filename:basename(F), "-")))
                 || F <- filelib:wildcard(filename:join(PluginsDir, "*"))],
    PluginsOk = check_plugins(EnabledFile, Available),
    Adv = case Advanced of "-" -> undefined; _ -> Advanced end,
    ConfOk = case {Confs, Adv} of
        {[], undefined} -> true;
        _ ->
            Ctx = #{os_type => os:type(), plugins_path => PluginsDir},
            try rabbit_prelaunch_conf:generate_config_from_cuttlefish_files(Ctx, Confs, Adv) of
                Config ->
                    io:format("configuration generated for ~p~n", [[A || {A, _} <- Config]]),
                    true
            catch
                Class:Reason ->
                    io:format("configuration rejected: ~p:~p~n", [Class, Reason]),
                    false
            end
    end,
    %% Let the logger flush the error reports before exiting.
    timer:sleep(300),
    halt(case PluginsOk andalso ConfOk of true -> 0; false -> 1 end);
main(_) ->
    io:format("usage: rabbitmq_check.escript PLUGINS_DIR ENABLED_PLUGINS|- ADVANCED|- CONF...~n"),
    halt(2).

check_plugins("-", _) -> true;
check_plugins(File, Available) ->
    case file:consult(File) of
        {ok, [Plugins]} when is_list(Plugins) ->
            Missing = [P || P <- Plugins, not lists:member(P, Available)],
            case Missing of
                [] -> io:format("enabled_plugins: ~p~n", [Plugins]), true;
                _ -> io:format("enabled_plugins: unknown plugin(s) ~p~n", [Missing]), false
            end;
        {ok, Other} ->
            io:format("enabled_plugins: expected one list term, got ~p~n", [Other]), false;
        {error, E} ->
            io:format("enabled_plugins: ~s~n", [file:format_error(E)]), false
    end.
